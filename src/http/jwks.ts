/**
 * GET /.well-known/jwks.json: the public keys our client signs with at the configured banks
 * (request objects, private_key_jwt client assertions, and keys published ahead of a rotation),
 * for banks that register a `jwks_uri` for our client instead of a pasted `jwks`. Public by
 * nature; computed once at start, cacheable for a few minutes.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { BankConfig } from '../config.ts';
import { clientJwks } from '../integrations/signing-key.loader.ts';

const JwkSetSchema = Type.Object(
  {
    keys: Type.Array(Type.Object({ kid: Type.String(), kty: Type.String() }, { additionalProperties: true })),
  },
  { description: 'RFC 7517 §5 JWK set (public keys only)' },
);

export async function jwksRoutes(
  app: FastifyInstance,
  options: { banks: readonly BankConfig[] },
): Promise<void> {
  const jwks = await clientJwks(options.banks);
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        operationId: 'getClientJwks',
        tags: ['banks'],
        summary: "Our client's public signing keys, for banks that take a jwks_uri",
        response: { 200: JwkSetSchema },
      },
    },
    async (_request, reply) => {
      reply.type('application/jwk-set+json');
      reply.header('cache-control', 'public, max-age=300');
      return jwks;
    },
  );
}
