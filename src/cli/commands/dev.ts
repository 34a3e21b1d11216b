import path from 'node:path';
import { parseArgs } from 'node:util';
import { stopTemporalServerFromPidFile } from '../../dev/temporalServer';
import type { Command } from '../command';
import { bringUpDatabase, bringUpTemporal } from '../stack';

export const devCommand: Command = {
  name: 'dev',
  summary: 'Bring up the development stack: database + migrations, Temporal dev server (built if missing).',
  usage: 'cairn dev [--stop] [--headless]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { stop: { type: 'boolean' }, headless: { type: 'boolean' } },
    });
    const log = (m: string) => ctx.io.out(m);
    if (values.stop) {
      const stopped = await stopTemporalServerFromPidFile(path.join(ctx.root, '.cairn', 'temporal'), log);
      log(stopped ? 'stopped the Temporal dev server' : 'no Temporal dev server started by cairn is running');
      return 0;
    }
    const config = ctx.config();
    await bringUpDatabase(config, log);
    const server = await bringUpTemporal(config, ctx.root, log, {
      keepRunning: true,
      headless: values.headless ?? false,
    });
    log(
      `Temporal: ${server.address}${server.uiUrl ? `, UI ${server.uiUrl}` : ''}${server.startedByUs ? ` (started, pid ${server.pid}; stop with: cairn dev --stop)` : ' (already running)'}`,
    );
    return 0;
  },
};
