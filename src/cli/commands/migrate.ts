import type { Command } from '../command';
import { bringUpDatabase } from '../stack';

export const migrateCommand: Command = {
  name: 'migrate',
  summary: 'Create the database if missing and apply pending migrations.',
  usage: 'cairn migrate',
  async run(_argv, ctx) {
    await bringUpDatabase(ctx.config(), (m) => ctx.io.out(m));
    return 0;
  },
};
