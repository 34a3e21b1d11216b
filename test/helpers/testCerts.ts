/**
 * A throwaway certificate authority for TLS tests, made with openssl: a CA, a server
 * certificate for 127.0.0.1/localhost and client certificates, all P-256, valid for a day.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestCa {
  dir: string;
  ca: Pem;
  /** Issues a certificate signed by this CA; `server` adds the SAN 127.0.0.1 / localhost. */
  issue(name: string, opts: { commonName: string; server?: boolean }): Pem;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createTestCa(label = 'cairn-test-ca'): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', `/CN=${label}`],
    dir,
  );
  const ca = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  return {
    dir,
    ca,
    issue(name, opts) {
      openssl(
        [
          'req',
          '-new',
          ...ec,
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.csr`,
          '-subj',
          `/CN=${opts.commonName}`,
        ],
        dir,
      );
      const ext = opts.server
        ? 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
        : 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
      writeFileSync(path.join(dir, `${name}.ext`), ext);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          `${name}.crt`,
          '-days',
          '1',
          '-extfile',
          `${name}.ext`,
        ],
        dir,
      );
      return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
    },
  };
}
