#!/usr/bin/env node
/**
 * mesh: the owner's administration command line.
 *
 *   mesh [--home DIR] [--json] COMMAND ... [--help]
 *
 * State lives in --home (or $MESH_HOME, default $XDG_DATA_HOME/mesh). Every failure prints
 * `mesh: error [code]: what to do` (or {"error":...} with --json) and exits non-zero.
 */
import { MeshError } from '../mesh/errors.js';
import { didYouMean, makeIo, parse, runMain } from '../runtime/cli.js';
import { GLOBAL_OPTIONS, type Command, type Values } from './command.js';
import { homeDir } from './state.js';
import { keyRecoverCommand, keyShareCommand, udfCommand } from './tools.js';
import { profileCreateCommand, profileShowCommand, statusCommand } from './profile.js';
import { deviceClaimCommand, deviceListCommand, deviceRemoveCommand, deviceRenameCommand } from './device.js';
import { deviceInviteCommand } from './invite.js';
import { deviceShowCommand } from './show.js';
import { configApplyCommand, configRemoveCommand, configSetCommand, configShowCommand, configUnsetCommand } from './config.js';
import { adminAddCommand, adminJoinCommand, adminRevokeCommand } from './admins.js';
import { recoverCommand } from './recover.js';
import { logVerifyCommand, logWitnessesCommand } from './log.js';
import { accountMoveCommand, deviceMoveCommand } from './move.js';
import { rolloutAbortCommand, rolloutResumeCommand, rolloutStatusCommand } from './rollout.js';

export const COMMANDS: readonly Command[] = [
  profileCreateCommand,
  profileShowCommand,
  statusCommand,
  deviceClaimCommand,
  deviceInviteCommand,
  deviceListCommand,
  deviceShowCommand,
  deviceRenameCommand,
  deviceRemoveCommand,
  deviceMoveCommand,
  configSetCommand,
  configUnsetCommand,
  configApplyCommand,
  configRemoveCommand,
  configShowCommand,
  rolloutStatusCommand,
  rolloutResumeCommand,
  rolloutAbortCommand,
  adminAddCommand,
  adminJoinCommand,
  adminRevokeCommand,
  recoverCommand,
  accountMoveCommand,
  logVerifyCommand,
  logWitnessesCommand,
  udfCommand,
  keyShareCommand,
  keyRecoverCommand,
];

const GROUPS = new Set(COMMANDS.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0] as string));

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'usage: mesh [--home DIR] [--json] COMMAND [ARGS] [--help]',
    '',
    'The owner\'s side of the Mathematical Mesh: your profile, your devices and their',
    'configuration, kept end to end through a portal that does not need to be trusted.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${('mesh ' + c.name).padEnd(w + 5)}${c.summary}`),
    '',
    'global options:',
    '  --home DIR   where your profile and keys are kept (default $MESH_HOME, else',
    '               $XDG_DATA_HOME/mesh, i.e. ~/.local/share/mesh; an existing ~/.mesh is still used)',
    '  --json       machine-readable output (one JSON object per line)',
    '  --help       help for a command, e.g. mesh device claim --help (or: mesh help device claim)',
    '  --version    the version',
    '',
    'start with: mesh profile create --portal URL --account NAME   (see docs/admin.md)',
  ].join('\n');
}

function groupHelp(group: string): string {
  const cs = COMMANDS.filter((c) => c.name.startsWith(group + ' '));
  const w = Math.max(...cs.map((c) => c.name.length)) + 2;
  return [`usage: mesh ${group} SUBCOMMAND [ARGS] [--help]`, '', ...cs.map((c) => `  ${('mesh ' + c.name).padEnd(w + 5)}${c.summary}`)].join('\n');
}

/** Split argv into the command's words and the rest; global options may come before the command. */
export function splitCommand(argv: readonly string[]): { command: Command | undefined; words: string[]; rest: string[] } {
  const pre: string[] = [];
  const words: string[] = [];
  let i = 0;
  let command: Command | undefined;
  while (i < argv.length) {
    const t = argv[i] as string;
    if (t === '--home') {
      pre.push(t);
      if (i + 1 < argv.length) pre.push(argv[i + 1] as string);
      i += 2;
      continue;
    }
    if (t.startsWith('--home=') || t === '--json' || t === '--help' || t === '-h') {
      pre.push(t);
      i++;
      continue;
    }
    if (t.startsWith('-')) break;
    words.push(t);
    i++;
    command = COMMANDS.find((c) => c.name === words.join(' '));
    if (command !== undefined) break;
    if (words.length === 1 && !GROUPS.has(t)) break;
    if (words.length >= 2) break;
  }
  return { command, words, rest: [...pre, ...argv.slice(i)] };
}

export async function main(argv: string[]): Promise<void> {
  // `mesh help [COMMAND...]` is `mesh [COMMAND...] --help`
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help'];
  const { command, words, rest } = splitCommand(argv);
  const io = makeIo(argv.includes('--json'));
  if (command === undefined) {
    const wantsHelp = argv.includes('--help') || argv.includes('-h');
    if (words.length === 0) {
      if (wantsHelp || argv.every((a) => a === '--json')) {
        io.out(mainHelp(), { commands: COMMANDS.map((c) => ({ command: `mesh ${c.name}`, summary: c.summary })) });
        if (!wantsHelp && argv.length === 0) process.exitCode = 64;
        return;
      }
      throw new MeshError('usage', `give a command; see mesh --help`);
    }
    const group = words[0] as string;
    if (words.length === 1 && GROUPS.has(group)) {
      if (wantsHelp) {
        io.out(groupHelp(group), { commands: COMMANDS.filter((c) => c.name.startsWith(group + ' ')).map((c) => ({ command: `mesh ${c.name}`, summary: c.summary })) });
        return;
      }
      throw new MeshError('usage', `"mesh ${group}" needs a subcommand: ${COMMANDS.filter((c) => c.name.startsWith(group + ' ')).map((c) => c.name.split(' ')[1]).join(', ')} (see mesh ${group} --help)`);
    }
    // the closest command: among a group's subcommands when the group is right, else among all commands and groups
    const sub = GROUPS.has(group) ? COMMANDS.filter((c) => c.name.startsWith(group + ' ')).map((c) => c.name) : [];
    const candidates = sub.length > 0 ? sub : [...COMMANDS.map((c) => c.name.split(' ')[0] as string), ...GROUPS];
    const typed = sub.length > 0 ? words.slice(0, 2).join(' ') : group;
    throw new MeshError('usage', `unknown command "mesh ${words.join(' ')}"${didYouMean(typed, [...new Set(candidates)], (c) => `"mesh ${c}"`)}; see mesh --help`);
  }
  const { values, positionals } = parse(rest, { ...GLOBAL_OPTIONS, ...command.options });
  if (values.help === true) {
    io.out(command.help, { command: `mesh ${command.name}`, summary: command.summary, help: command.help });
    return;
  }
  const home = homeDir(typeof values.home === 'string' ? values.home : undefined);
  await command.run(values as Values, positionals, { io, home });
}

runMain('mesh', main);
