/** The systemd unit that runs the agent on the board: an unprivileged user, a sandbox, one writable directory. */

export const AGENT_DATA_DIR = '/var/lib/mesh-agent';
export const AGENT_SCRIPT = '/opt/mesh/mesh-agent.mjs';
export const UNIT_FILE = 'mesh-agent.service';

export function agentUnit(p: { description?: string } = {}): string {
  return `[Unit]
Description=${p.description ?? 'Mathematical Mesh device agent'}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=mesh
Group=mesh
# /var/lib/mesh-agent, created and owned by User= (mode 0700): device.json, keys.json, claim.json, agent.json, schemas/
StateDirectory=mesh-agent
StateDirectoryMode=0700
UMask=0077
ExecStart=/usr/bin/node ${AGENT_SCRIPT} run --data ${AGENT_DATA_DIR}
Restart=always
RestartSec=5
# sandbox: the agent writes only its data directory
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${AGENT_DATA_DIR}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
# no MemoryDenyWriteExecute: V8's JIT needs writable+executable memory

[Install]
WantedBy=multi-user.target
`;
}
