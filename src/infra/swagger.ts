/** The OpenAPI document (generated from the TypeBox route schemas), Swagger UI at /docs, / to it. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_INFO = {
  title: 'Bankpay API',
  version: '1.0.0',
  description:
    'Payments the customer approves in their own bank app. A checkout starts an OpenID Connect CIBA ' +
    "request at the customer's bank; follow its status until it is terminal. Errors are RFC 9457 " +
    'problem+json with a stable `code`.',
  license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
};

/** The title of the Swagger UI page. */
export const DOCS_TITLE = 'Bankpay API · Swagger UI';

export async function registerSwagger(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      tags: [
        { name: 'checkouts', description: 'Create and follow payments' },
        { name: 'banks', description: 'The banks customers can pay with' },
        { name: 'elements', description: 'The checkout element for storefront pages (<bankpay-checkout>)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'ciba', description: 'Called by banks: CIBA ping-mode notifications (CIBA Core §10.2)' },
      ],
      components: {
        securitySchemes: {
          merchantKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'A merchant API key (`npm run apikey`), or for reading one checkout its clientSecret. ' +
              'A restricted key holds only some scopes: each operation lists the one it needs.',
          },
        },
      },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // BaseLayout: the operations without Swagger's own top bar (its logo and a URL field that
    // would load other documents). Try-it-out is on: every operation shows its form and Execute.
    uiConfig: { deepLinking: true, tryItOutEnabled: true, layout: 'BaseLayout' },
    theme: { title: DOCS_TITLE },
  });
  // The API's root points at its documentation.
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.redirect('/docs', 302));
}
