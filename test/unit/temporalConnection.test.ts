/**
 * Temporal connection settings from @temporalio/envconfig: a temporal.toml profile, TEMPORAL_*
 * variables over it, Cairn's defaults under both; an API key implies TLS; a bad profile or an
 * unreadable certificate is one error naming the variable.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';
import { temporalConnectionOptions } from '../../src/temporalConnection';

const dir = mkdtempSync(path.join(tmpdir(), 'cairn-envconfig-'));
const file = path.join(dir, 'temporal.toml');
writeFileSync(
  file,
  [
    '[profile.default]',
    'address = "10.0.0.1:7233"',
    '[profile.cloud]',
    'address = "ns.acct.tmprl.cloud:7233"',
    'namespace = "ns.acct"',
    'api_key = "secret-key"',
    '[profile.cloud.grpc_meta]',
    'x-team = "agents"',
    '',
  ].join('\n'),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Temporal connection settings', () => {
  it('plain by default', () => {
    expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
  });

  it('reads a profile, with variables over it', () => {
    const cloud = loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' });
    expect([cloud.temporalAddress, cloud.temporalNamespace, cloud.temporalApiKey]).toEqual([
      'ns.acct.tmprl.cloud:7233',
      'ns.acct',
      'secret-key',
    ]);
    // An API key implies TLS (with the system's roots).
    expect(temporalConnectionOptions(cloud)).toEqual({
      address: 'ns.acct.tmprl.cloud:7233',
      apiKey: 'secret-key',
      tls: true,
      metadata: { 'x-team': 'agents' },
    });
    const overridden = loadConfig({
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_ADDRESS: '127.0.0.1:9999',
      TEMPORAL_NAMESPACE: 'other',
    });
    expect([overridden.temporalAddress, overridden.temporalNamespace]).toEqual(['127.0.0.1:9999', 'other']);
    expect(loadConfig({ TEMPORAL_CONFIG_FILE: file }).temporalAddress).toBe('10.0.0.1:7233');
  });

  it('TEMPORAL_TLS=false keeps a profile plaintext; TLS variables make TLS settings', () => {
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'false' })).tls).toBe(false);
    const tls = loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' });
    expect(temporalConnectionOptions(tls).tls).toMatchObject({ serverNameOverride: 'temporal.internal' });
  });

  it('names the variable of a missing profile or an unreadable certificate', () => {
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'nope' })).toThrow(ConfigError);
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'nope' })).toThrow(
      /TEMPORAL_PROFILE could not be used: Profile 'nope' not found/,
    );
    const config = loadConfig({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'missing.pem') });
    expect(() => temporalConnectionOptions(config)).toThrow(/TEMPORAL_TLS_\* could not be used/);
  });
});
