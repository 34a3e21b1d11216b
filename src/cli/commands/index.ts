/** The registry of subcommands, in the order `cairn help` lists them. */
import type { Command } from '../command';
import { benchCommand } from './bench';
import { demoCommand } from './demo';
import { devCommand } from './dev';
import { entityCommand } from './entity';
import { logCommand } from './log';
import { migrateCommand } from './migrate';
import { taskCommand } from './task';
import { traceCommand } from './trace';
import { verifyCommand } from './verify';
import { workerCommand } from './worker';

export const commands: Command[] = [benchCommand, demoCommand, devCommand, migrateCommand, taskCommand, workerCommand, entityCommand, traceCommand, logCommand, verifyCommand];
