/**
 * The customer's decision on a pending CIBA request, shared by the bank app and the control API.
 * CIBA Core §10: the OP then answers the next token poll with tokens or `access_denied`.
 */
import { HttpError } from './http.ts';
import { approveBackchannelRequest, loadOidcProvider, type Provider } from './provider.ts';
import type { RequestRegistry } from './requests.ts';

export const decisions = ['approve', 'deny'] as const;
export type Decision = (typeof decisions)[number];

export interface Decider {
  decide(
    authReqId: string,
    decision: Decision,
    login?: string,
  ): Promise<{ authReqId: string; status: string }>;
}

export function createDecider(
  provider: Provider,
  requests: RequestRegistry,
  paymentsApiUrl: string,
): Decider {
  return {
    async decide(authReqId, decision, login) {
      const { errors } = await loadOidcProvider();
      const request = await provider.BackchannelAuthenticationRequest.find(authReqId);
      // Unknown and expired look the same to the customer: there is nothing left to approve.
      if (!request || request.isExpired) {
        throw new HttpError(404, 'not_found', 'no pending request with this id (unknown or expired)');
      }
      if (login !== undefined && request.accountId !== login) {
        throw new HttpError(404, 'not_found', 'no pending request with this id for this customer');
      }
      if (request.grantId || request.error || request.consumed) {
        throw new HttpError(409, 'already_decided', 'this request was already approved or denied');
      }
      if (decision === 'approve') {
        await approveBackchannelRequest(provider, request, paymentsApiUrl);
        await requests.decide(authReqId, 'approved');
        return { authReqId, status: 'approved' };
      }
      await provider.backchannelResult(request, new errors.AccessDenied('the customer denied the request'));
      await requests.decide(authReqId, 'denied');
      return { authReqId, status: 'denied' };
    },
  };
}
