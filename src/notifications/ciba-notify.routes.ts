/**
 * POST /ciba/notify/{bankId}: the client_notification_endpoint of CIBA ping mode (CIBA Core
 * §10.2, DESIGN.md §7.1), registered at each ping-mode bank as {PUBLIC_URL}/ciba/notify/{bankId}.
 *
 * Its caller is a bank, not a merchant: no API key, and the bearer token is the per-request
 * client_notification_token (ciba-notify.service.ts checks it). Any refusal is 401 and changes
 * nothing, whatever was wrong, so a caller learns nothing about which checkouts exist. Its rate
 * limit counts per bank and calling address, and the throttle of failed merchant credentials leaves it alone: a bank
 * pinging for a checkout that just settled must not lock out its next pings.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { CheckoutError } from '../checkout/checkout.errors.ts';
import { bearerToken } from '../http/auth.ts';
import { addressKey } from '../http/auth-throttle.ts';
import { ProblemError, problemResponses } from '../http/problem.ts';
import { acceptPing, type PingDeps } from './ciba-notify.service.ts';

export interface CibaNotifyRouteOptions extends PingDeps {
  /** Pings per bank per window, per API process. */
  rateLimit: { max: number; timeWindowMs: number };
}

const NotifyParams = Type.Object({
  bankId: Type.String({ description: 'The bank id of the banks file', examples: ['sandbox'] }),
});

const NotifyBody = Type.Object(
  {
    auth_req_id: Type.String({
      description: "The auth_req_id of the bank's acknowledgement (CIBA Core §7.3)",
      examples: ['1c266114-a1be-4252-8ad1-04986c5b9ac1'],
    }),
  },
  { description: 'CIBA Core §10.2: the ping carries only the auth_req_id' },
);

export const cibaNotifyRoutes: FastifyPluginAsyncTypebox<CibaNotifyRouteOptions> = async (app, deps) => {
  const bucket = (request: FastifyRequest) => {
    const { bankId } = request.params as { bankId?: string };
    // Per bank and calling address: the bank's own servers keep their budget whatever others
    // send to its URL. Made-up bank ids share one bucket per address.
    const bank = bankId !== undefined && deps.pingBanks.has(bankId) ? bankId : '?';
    return `ciba-notify:${bank}:${addressKey(request.ip)}`;
  };
  app.post(
    '/ciba/notify/:bankId',
    {
      config: {
        merchantCredentialThrottle: false,
        rateLimit: {
          max: deps.rateLimit.max,
          timeWindow: deps.rateLimit.timeWindowMs,
          keyGenerator: bucket,
          errorResponseBuilder: (_request, context) =>
            new ProblemError(
              'rate_limited',
              `More than ${context.max} notifications from this bank in ${deps.rateLimit.timeWindowMs / 1000} s; retry in ${context.after}`,
              { retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) },
            ),
        },
      },
      // Documented, but checked by the handler: a malformed ping is refused like a forged one (401).
      validatorCompiler: () => () => true,
      schema: {
        operationId: 'cibaNotify',
        tags: ['ciba'],
        summary: 'CIBA ping: the bank says the customer decided (called by banks in ping mode)',
        description:
          'Register {PUBLIC_URL}/ciba/notify/{bankId} at the bank as the client_notification_endpoint. ' +
          'Authorization: Bearer with the client_notification_token Bankpay sent with that request. ' +
          'Answers 204 and fetches the result with one token request at once; a repeated ping causes no ' +
          'second request while one is in flight. Anything else is 401 and changes nothing.',
        params: NotifyParams,
        body: NotifyBody,
        response: {
          204: Type.Null({
            description: 'The ping matched a checkout awaiting approval: its token request follows at once',
          }),
          ...problemResponses(['invalid_notification', 'rate_limited', 'dependency_unavailable']),
        },
      },
    },
    async (request, reply) => {
      const { bankId } = request.params as { bankId: string };
      let checkoutId: string;
      try {
        checkoutId = await acceptPing(deps, bankId, bearerToken(request), request.body);
      } catch (error) {
        // RFC 6750 §3: a refused bearer token says so in WWW-Authenticate.
        if (error instanceof CheckoutError) reply.header('www-authenticate', 'Bearer error="invalid_token"');
        throw error;
      }
      request.log.info({ checkoutId, bankId }, `CIBA ping for checkout ${checkoutId}: asking the bank now`);
      return reply.code(204).send(null);
    },
  );
};
