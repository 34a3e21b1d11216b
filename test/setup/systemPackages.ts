/**
 * Debian packages some tests start for real (PgBouncer in front of Postgres). `npm test` does its
 * own set-up: on a Debian machine where we are root, a missing package is installed once with
 * apt-get (refreshing the package lists only if the first try cannot find it); elsewhere the test
 * that needs it says what to install.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function ensureDebianPackage(
  pkg: string,
  binaries: readonly string[],
  log: (m: string) => void,
): void {
  if (binaries.some((b) => existsSync(b))) return;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return;
  const install = () =>
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], {
      stdio: 'pipe',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  log(`installing ${pkg} (apt-get)`);
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'pipe' });
    install();
  }
}
