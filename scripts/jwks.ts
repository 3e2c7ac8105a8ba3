/**
 * `npm run jwks`: prints the public JWK set of the keys our client signs with at the banks of
 * BANKS_FILE (request objects, private_key_jwt client assertions, keys published for a
 * rotation), to paste into a bank's client settings ("JSON Web Key Set" / `jwks`). The same set
 * is served at GET /.well-known/jwks.json for banks that take a `jwks_uri`. Only the banks file
 * and the passphrases it names are read.
 */
import { resolve } from 'node:path';
import { ConfigError, loadBanks } from '../src/config.ts';
import { clientJwks } from '../src/integrations/signing-key.loader.ts';

const banksFile = process.env.BANKS_FILE?.trim();
if (!banksFile) {
  console.error('BANKS_FILE is not set: the path of the banks JSON file (see banks.example.json)');
  process.exit(78);
}
try {
  const banks = loadBanks(resolve(banksFile));
  for (const bank of banks) {
    const kids = (await clientJwks([bank])).keys.map((k) => k.kid).join(', ');
    console.error(`${bank.id}: ${kids || 'no signing keys (plain requests, tls_client_auth)'}`);
  }
  // One set for every bank: a key used at two banks appears once.
  console.log(JSON.stringify(await clientJwks(banks), null, 2));
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`configuration error: ${error.message}`);
    process.exit(78);
  }
  throw error;
}
