/** `npm start`: the HTTP API. Stops gracefully on SIGTERM/SIGINT (in-flight requests finish). */
import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createDatabase, createSqlPool } from './infra/database.ts';
import { createQueueInfra } from './infra/queue.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`configuration error: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const sql = createSqlPool(config.databaseUrl, { poolSize: 10 });
const db = createDatabase(config.databaseUrl, { pool: sql });
const queue = createQueueInfra(config.queue, config.databaseUrl);
const app = await buildApp({ config, db, sql, queue });

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down: finishing in-flight requests');
  const force = setTimeout(() => {
    app.log.error('shutdown took longer than 10 s, exiting');
    process.exit(1);
  }, 10_000);
  force.unref();
  // In-flight requests have 5 s; a connection still open then holds a request that will never
  // complete (a client that sent half its headers, say) and would hold the shutdown up.
  const cut = setTimeout(() => {
    app.log.warn('connections still open 5 s into the shutdown: closing them');
    app.server.closeAllConnections();
  }, 5_000);
  cut.unref();
  await app.close();
  await queue.close();
  await db.$disconnect();
  await sql.end();
  app.log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

try {
  await app.listen({ host: config.host, port: config.port });
} catch (error) {
  app.log.fatal({ err: error }, `cannot listen on ${config.host}:${config.port}`);
  process.exit(1);
}
