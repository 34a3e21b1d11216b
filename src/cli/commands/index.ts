/** The registry of subcommands, in the order `cairn help` lists them. */
import type { Command } from '../command';
import { benchCommand } from './bench';
import { blastCommand } from './blast';
import { claimsCommand } from './claims';
import { demoCommand } from './demo';
import { devCommand } from './dev';
import { entityCommand } from './entity';
import { episodesCommand } from './episodes';
import { inboxCommand } from './inbox';
import { logCommand } from './log';
import { maintenanceCommand } from './maintenance';
import { migrateCommand } from './migrate';
import { retractCommand } from './retract';
import { taskCommand } from './task';
import { traceCommand } from './trace';
import { verifyCommand } from './verify';
import { workerCommand } from './worker';
import { agentsCommand, mcpCommand } from './mcpCommands';

export const commands: Command[] = [benchCommand, demoCommand, devCommand, migrateCommand, taskCommand, workerCommand, entityCommand, traceCommand, logCommand, blastCommand, retractCommand, verifyCommand, claimsCommand, inboxCommand, episodesCommand, maintenanceCommand, mcpCommand, agentsCommand];
