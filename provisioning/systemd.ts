/**
 * What the factory puts on each board image for systemd: the agent's unit and the sysusers.d entry
 * that creates its `mesh` user at boot (systemd-sysusers(8)), so the image needs no useradd step.
 *
 * The unit is a Type=notify service with a watchdog: the agent sends READY=1 once it runs, its
 * connection in STATUS=, and WATCHDOG=1 from its main loop every WatchdogSec/2 (runtime/sd-notify.ts);
 * a hung agent is restarted. The messages are sent by a `systemd-notify` child (Node.js has no unix
 * datagram sockets), hence NotifyAccess=all; the agent keeps $NOTIFY_SOCKET from its own children.
 *
 * The sandbox scores 1.3 on `systemd-analyze security` (test/ops.test.ts checks at most 2.0). What
 * it keeps, and why: the network (the portal and the MQTT broker), AF_UNIX (the notify socket),
 * W+X memory (V8's JIT: no MemoryDenyWriteExecute), the host's root (the agent runs /usr/bin/node).
 * Not DynamicUser=: the device's own software reads config.json, which a DynamicUser= state
 * directory (under /var/lib/private, 0700) would hide from it.
 */

export const AGENT_DATA_DIR = '/var/lib/mesh-agent';
export const AGENT_SCRIPT = '/opt/mesh/mesh-agent.mjs';
export const UNIT_FILE = 'mesh-agent.service';
/** installed as /usr/lib/sysusers.d/mesh-agent.conf */
export const SYSUSERS_FILE = 'mesh-agent.sysusers.conf';
export const AGENT_USER = 'mesh';
/** WatchdogSec= of the agent: it pings every half of it */
export const AGENT_WATCHDOG_S = 60;

export function agentSysusers(): string {
  return `# systemd-sysusers(8): the agent's user, made at boot (install as /usr/lib/sysusers.d/mesh-agent.conf)
u ${AGENT_USER} - "Mathematical Mesh device agent" ${AGENT_DATA_DIR} /usr/sbin/nologin
`;
}

/**
 * The options node runs the agent with, in this unit and in Dockerfile.arm's ENTRYPOINT (a test
 * keeps them the same): `--jitless`, V8's interpreter only, no compiled code: about 1 MiB less
 * for an idle agent, which runs little JavaScript (its cryptography is OpenSSL's); cold start a few
 * per cent slower (docs/benchmarks.md, "The leaner agent"; bench/agent-rows.ts measures the agent
 * with and without it).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--jitless'];

export function agentUnit(p: { description?: string } = {}): string {
  return `[Unit]
Description=${p.description ?? 'Mathematical Mesh device agent'}
Documentation=man:systemd.exec(5)
Wants=network-online.target
After=network-online.target

[Service]
# READY=1 once running, STATUS= its connection, WATCHDOG=1 every ${AGENT_WATCHDOG_S / 2} s from the main loop
Type=notify
# the notifications come from a systemd-notify child (Node.js cannot send unix datagrams)
NotifyAccess=all
WatchdogSec=${AGENT_WATCHDOG_S}
# the user comes from ${SYSUSERS_FILE} (/usr/lib/sysusers.d/mesh-agent.conf)
User=${AGENT_USER}
Group=${AGENT_USER}
# ${AGENT_DATA_DIR}, created and owned by User= (mode 0700): device.json, keys.json, claim.json, agent.json, schemas/
StateDirectory=mesh-agent
StateDirectoryMode=0700
UMask=0077
ExecStart=/usr/bin/node ${[...AGENT_NODE_FLAGS, AGENT_SCRIPT].join(' ')} run --data ${AGENT_DATA_DIR}
Restart=always
RestartSec=5
# sandbox: the agent writes only its data directory; a configuration hook runs inside it too
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${AGENT_DATA_DIR}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateIPC=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# a call outside the list fails with EPERM rather than killing the agent
SystemCallErrorNumber=EPERM
# no MemoryDenyWriteExecute: V8's JIT needs writable+executable memory

[Install]
WantedBy=multi-user.target
`;
}
