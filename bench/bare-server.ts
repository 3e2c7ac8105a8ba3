/**
 * The reference for `npm run bench`: a bare Fastify 5 app with no plugins, started the same way as
 * the API (a `node --import tsx` child), so the ratio of the two shows what Bankpay's own work
 * costs on this machine. Env: PORT (required), HOST (default 127.0.0.1).
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
const body = { id: 'chk_bare', status: 'pending', amount: 4990, currency: 'EUR' };

app.post('/bare', async (_request, reply) => reply.code(202).send(body));
app.get('/bare/:id', async () => body);

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT) });
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
