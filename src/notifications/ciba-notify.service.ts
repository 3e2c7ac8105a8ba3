/**
 * CIBA ping mode, inbound (CIBA Core §10.2; DESIGN.md §7.1): the bank tells us that the customer
 * decided on the request with this auth_req_id. The ping carries no result, only the bearer
 * client_notification_token we sent with the request; the result is fetched with a token request,
 * the same one poll mode makes (jobs/token-poller.ts, with the same answer policy).
 */
import { CheckoutError } from '../checkout/checkout.errors.ts';
import type { PollScheduleRepository } from '../checkout/poll-schedule.repository.ts';
import { clientNotificationTokenMatches } from './notification-token.ts';

export interface PingDeps {
  pollSchedule: PollScheduleRepository;
  /** Ids of the banks configured for ping mode. */
  pingBanks: ReadonlySet<string>;
}

/**
 * What an auth_req_id we look up may be: visible ASCII, at most 512 characters (CIBA Core §7.3
 * sets no format; oidc-provider's are 43 characters of base64url). Anything else, a NUL byte that
 * PostgreSQL cannot store among them, is refused before a query is made.
 */
const AUTH_REQ_ID = /^[\x21-\x7e]{1,512}$/;

/**
 * Accepts one ping: `bankId` from the URL, `token` the bearer token presented, `body` the parsed
 * JSON body (`{ "auth_req_id": "…" }`). Brings the checkout's next token request forward to now
 * (or right after one in flight) and returns its id.
 * @throws CheckoutError('invalid_notification') for anything else: a bank not in ping mode, no
 *   token, a body without a string auth_req_id, no checkout awaiting approval with that
 *   auth_req_id at that bank (unknown, another bank's, already settled), or another checkout's
 *   token. Nothing is changed and the bank is not asked.
 */
export async function acceptPing(
  deps: PingDeps,
  bankId: string,
  token: string | undefined,
  body: unknown,
): Promise<string> {
  const authReqId =
    typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>).auth_req_id
      : undefined;
  if (
    !deps.pingBanks.has(bankId) ||
    !token ||
    typeof authReqId !== 'string' ||
    !AUTH_REQ_ID.test(authReqId)
  ) {
    throw refused();
  }
  const target = await deps.pollSchedule.findPingTarget(bankId, authReqId);
  // Compared whether or not a checkout was found, so that both cost the same.
  const matches = clientNotificationTokenMatches(token, target?.notificationTokenHash ?? null);
  if (!target || !matches) throw refused();
  // Settled between the two statements: nothing left to ask, and nothing changed.
  if (!(await deps.pollSchedule.notePing(target.id, authReqId))) throw refused();
  return target.id;
}

function refused(): CheckoutError {
  return new CheckoutError(
    'invalid_notification',
    'No checkout awaiting approval at this bank has this auth_req_id and client_notification_token',
  );
}
