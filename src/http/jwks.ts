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
  {
    description: 'RFC 7517 §5 JWK set (public keys only)',
    examples: [
      {
        keys: [
          {
            kty: 'RSA',
            kid: 'sandbox-2025-06',
            use: 'sig',
            alg: 'PS256',
            e: 'AQAB',
            n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
          },
        ],
      },
    ],
  },
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
