#!/usr/bin/env bash
# Runs the single-file agent as a real ARM device under qemu user-mode emulation against a portal
# on this machine: Debian's own Node for ARM (../shared/reference/arm-emulation.sh), the whole
# Alice-and-Bob scenario (claim, two owners, configuration applied, removal, recovery).
#   bash scripts/arm-test.sh            ARMv7 (Debian trixie armhf, Node 20), Cortex-A7 core
#   bash scripts/arm-test.sh armv6      ARMv6 Pi Zero core (QEMU_CPU=arm1176, Debian bookworm armel, Node 18)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-armv7}
WORK=${WORK:-${TMPDIR:-/tmp}/arm-node}
EMU=${ARM_EMULATION:-../shared/reference/arm-emulation.sh}
case "$TARGET" in
  armv7) SUITE=trixie; ARCH=armhf; export QEMU_CPU=${QEMU_CPU:-cortex-a7} ;;
  armv6) SUITE=bookworm; ARCH=armel; export QEMU_CPU=arm1176 ;;
  *) echo "usage: scripts/arm-test.sh [armv7|armv6]" >&2; exit 2 ;;
esac
NODE_ARM="$WORK/node-$SUITE-$ARCH"
if [ ! -x "$NODE_ARM" ]; then
  echo "== preparing Debian $SUITE $ARCH Node under qemu (once; cached in $WORK)"
  # exit 3: the emulator could not be prepared (no qemu package or Debian mirror): not a failure of ours
  WORK="$WORK" bash "$EMU" "$SUITE" "$ARCH" || { echo "arm-test: could not prepare the ARM emulation" >&2; exit 3; }
fi
echo "== the emulated node: $("$NODE_ARM" -e 'console.log("process.arch=" + process.arch, process.version, "arm_version=" + process.config.variables.arm_version)')"
[ -f dist/agent/cli.js ] || npm run build --silent
node scripts/build-agent.mjs
echo "== scenario with the bundled agent on $TARGET ($QEMU_CPU)"
node dist/scripts/run-demo.js --agent-file dist/mesh-agent.mjs --agent-node "$NODE_ARM" --wait-ms "${WAIT_MS:-60000}"
