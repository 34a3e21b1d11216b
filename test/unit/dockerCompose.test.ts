/**
 * docker-compose.yml cannot be run here (no Docker engine), so check what can drift statically:
 * services and ports, the official images, start-up ordering, the worker's environment against
 * src/config.ts, and the registered search attributes against src/shared/searchAttributes.ts.
 * (The cluster tier, test/cluster, runs the compose's scripts and worker command for real.)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchema } from '../../src/config';
import { SEARCH_ATTRIBUTES } from '../../src/shared/searchAttributes';

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | { target: number; published: string | number })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: unknown };
}

const compose = parse(readFileSync(path.join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
};
const services = compose.services;

function service(name: string): Service {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
}

/** Environment as a map, whichever of the two compose syntaxes is used. */
function env(s: Service): Record<string, string> {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

/** "host:container" port mappings, whichever syntax is used. */
function ports(s: Service): string[] {
  return (s.ports ?? []).map((p) => (typeof p === 'string' ? p : `${p.published}:${p.target}`));
}

function commandText(s: Service): string {
  return Array.isArray(s.command) ? s.command.join(' ') : (s.command ?? '');
}

describe('docker-compose.yml', () => {
  it('has the expected services', () => {
    for (const name of [
      'postgres',
      'temporal-setup',
      'temporal',
      'temporal-namespace',
      'temporal-ui',
      'cairn-worker',
    ]) {
      expect(services, name).toHaveProperty(name);
    }
  });

  it('publishes Postgres on 15432 (not a local Postgres’s 5432), Temporal on 7233 and the UI on 8080, on loopback only', () => {
    expect(ports(service('postgres'))).toEqual(['127.0.0.1:15432:5432']);
    expect(ports(service('temporal'))).toEqual(['127.0.0.1:7233:7233']);
    expect(ports(service('temporal-ui'))).toEqual(['127.0.0.1:8080:8080']);
    for (const [name, s] of Object.entries(services)) {
      for (const p of ports(s)) expect(p, `${name} publishes ${p}`).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('checks Postgres health over TCP, not the init-time socket', () => {
    const test = service('postgres').healthcheck?.test as string[];
    expect(test.join(' ')).toMatch(/pg_isready -h 127\.0\.0\.1\b/);
  });

  it('uses the official images, not the deprecated auto-setup image', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? '', name).not.toMatch(/auto-setup/);
    }
    expect(service('postgres').image).toMatch(/^postgres:16\b/);
    expect(service('temporal').image).toMatch(/^temporalio\/server:/);
    expect(service('temporal-setup').image).toMatch(/^temporalio\/admin-tools:/);
    expect(service('temporal-namespace').image).toMatch(/^temporalio\/admin-tools:/);
    expect(service('temporal-ui').image).toMatch(/^temporalio\/ui:/);
    expect(env(service('temporal-ui')).TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  it('configures the server for Postgres through the image variables', () => {
    expect(env(service('temporal'))).toMatchObject({
      DB: 'postgres12',
      POSTGRES_SEEDS: 'postgres',
      BIND_ON_IP: '0.0.0.0',
    });
    const setup = commandText(service('temporal-setup'));
    expect(env(service('temporal-setup'))).toMatchObject({
      SQL_PLUGIN: 'postgres12',
      DBNAME: 'temporal',
      VISIBILITY_DBNAME: 'temporal_visibility',
    });
    for (const db of ['DBNAME', 'VISIBILITY_DBNAME']) {
      // Each step retries (a fresh Postgres may still be settling when it first reports healthy).
      expect(setup).toContain(`retry temporal-sql-tool --db "$$${db}" create`);
      expect(setup).toContain(`retry temporal-sql-tool --db "$$${db}" setup-schema`);
      expect(setup).toContain(`retry temporal-sql-tool --db "$$${db}" update-schema`);
    }
  });

  it('orders start-up with conditions that point at real healthchecks and one-shot jobs', () => {
    const dependsOn = (name: string) => service(name).depends_on as Record<string, { condition?: string }>;
    expect(dependsOn('temporal-setup').postgres?.condition).toBe('service_healthy');
    expect(dependsOn('temporal')['temporal-setup']?.condition).toBe('service_completed_successfully');
    expect(dependsOn('temporal-namespace').temporal?.condition).toBe('service_healthy');
    expect(dependsOn('cairn-worker')['temporal-namespace']?.condition).toBe('service_completed_successfully');
    expect(dependsOn('cairn-worker').postgres?.condition).toBe('service_healthy');

    for (const [name, s] of Object.entries(services)) {
      for (const [target, dep] of Object.entries(s.depends_on ?? {})) {
        if (dep.condition === 'service_healthy') {
          expect(
            service(target).healthcheck?.test,
            `${name} waits for ${target} to be healthy`,
          ).toBeDefined();
        }
      }
    }
  });

  it('gives the worker exactly the configuration variables of src/config.ts', () => {
    const worker = service('cairn-worker');
    expect(worker.build).toBeDefined();
    // The built bin with node, not npx (which would install into its cache and chmod /app as USER node).
    expect(commandText(worker)).toBe('node /app/bin/cairn.js worker --no-migrate');

    const keys = Object.keys(env(worker)).sort();
    const known = Object.keys(configSchema.shape);
    expect(keys).toEqual([
      'CAIRN_TASK_QUEUE_PREFIX',
      'DATABASE_URL',
      'TEMPORAL_ADDRESS',
      'TEMPORAL_NAMESPACE',
      'TEMPORAL_UI_URL',
    ]);
    for (const key of keys) expect(known, `${key} is not a variable in configSchema`).toContain(key);
    // And the values pass the schema itself.
    expect(configSchema.safeParse(env(worker)).success).toBe(true);
  });

  it('runs the worker as a non-superuser login granted only cairn_app; the owner migrates', () => {
    const owner = env(service('postgres')).POSTGRES_USER;
    const login = new URL(env(service('cairn-worker')).DATABASE_URL!).username;
    expect(login).toBe('cairn_worker');
    expect(login).not.toBe(owner);
    const migrator = service('cairn-migrate');
    expect(commandText(migrator)).toBe('node /app/bin/cairn.js migrate');
    expect(new URL(env(migrator).DATABASE_URL!).username).toBe(owner);
    const deps = service('cairn-worker').depends_on as Record<string, { condition?: string }>;
    expect(deps['cairn-migrate']?.condition).toBe('service_completed_successfully');

    const raw = parse(readFileSync(path.join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8')) as {
      configs: Record<string, { content: string }>;
      services: Record<string, { configs?: { source: string; target: string }[] }>;
    };
    const mounted = raw.services.postgres?.configs?.find((c) =>
      c.target.startsWith('/docker-entrypoint-initdb.d/'),
    );
    const script = raw.configs[mounted?.source ?? '']?.content ?? '';
    expect(script).toMatch(
      /CREATE ROLE cairn_worker LOGIN PASSWORD 'cairn_worker'\s+NOSUPERUSER [^;]*NOBYPASSRLS NOINHERIT;/,
    );
    expect(script).toMatch(/GRANT cairn_app TO cairn_worker;/);
  });

  it('registers exactly the search attributes in SEARCH_ATTRIBUTES', () => {
    const script = commandText(service('temporal-namespace'));
    const registered = Object.fromEntries(
      [...script.matchAll(/--name\s+(\w+)\s+--type\s+(\w+)/g)].map((m) => [m[1], m[2]]),
    );
    expect(registered).toEqual(SEARCH_ATTRIBUTES);
    expect(script).toMatch(/namespace create -n default\b/);
  });

  it('builds the worker on a current Node LTS and runs it as a non-root user with the bin directly', () => {
    const dockerfile = readFileSync(path.join(__dirname, '..', '..', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:(22|24)-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    const instructions = dockerfile.split('\n').filter((l) => !l.startsWith('#'));
    expect(instructions.join('\n')).not.toMatch(/npx/);
    expect(dockerfile).toMatch(/^CMD \["node", "\/app\/bin\/cairn\.js", "worker"\]$/m);
  });
});
