/**
 * What `cairn mcp` (and the demo) need to serve sessions: a pool bounded by each session's
 * grant (no session-wide scopes), the observation types of an agent module registered in the
 * database, the stored policies, and, when Temporal answers, a client for the task tools.
 */
import type { Pool } from 'pg';
import { CairnClient } from '../client';
import type { CairnConfig } from '../config';
import type { ObservationTypeRegistry } from '../shared/observationTypes';
import { storedPolicyResolver } from '../store/observations/read';
import { registerObservationTypes } from '../store/observations/registerTypes';
import { createPool } from '../store/pool';
import type { StoreSessionDeps } from '../tools/storeSession';

export async function createMcpDeps(
  config: CairnConfig,
  registry: ObservationTypeRegistry,
  opts: { tasks: boolean; log: (line: string) => void; pool?: Pool },
): Promise<StoreSessionDeps & { close(): Promise<void> }> {
  const pool = opts.pool ?? createPool(config.databaseUrl, { max: 10, applicationName: 'cairn-mcp' });
  await registerObservationTypes(pool, registry.all());
  const policyOf = await storedPolicyResolver(pool);
  let client: CairnClient | undefined;
  if (opts.tasks) {
    try {
      client = await withTimeout(CairnClient.connect(config), 5000);
    } catch (err) {
      opts.log(
        `cairn mcp: no Temporal at ${config.temporalAddress} (${err instanceof Error ? err.message : String(err)}); task tools are off`,
      );
    }
  }
  return {
    pool,
    registry,
    policyOf,
    client,
    temporalUi: { uiUrl: config.temporalUiUrl, namespace: config.temporalNamespace },
    async close() {
      await client?.close();
      if (!opts.pool) await pool.end();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
