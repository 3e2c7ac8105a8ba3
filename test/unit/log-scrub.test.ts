/**
 * A clientSecret in a URL (the stream route's ?client_secret=) never reaches a log line, whatever
 * the line quotes the URL in: a field, a message, an error.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerOptions, scrubSecrets } from '../../src/infra/logging.ts';

const SECRET = 'chk_3kq9Xw2bV7mPz4TfLr8aQn1c_secret_Vq2m8RzK4cJtY7wXb1nHs5dLp0aFgE3u9QiNoT6kMyA';
const SIGNATURE = SECRET.split('_secret_')[1] ?? '';

/** A logger made with loggerOptions, at trace level, and the lines it wrote. */
function capturedLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, log: pino(loggerOptions('trace', 'test'), sink) };
}

describe('scrubSecrets', () => {
  it.each([
    `/v1/checkouts/x/stream?client_secret=${SECRET}`,
    `/v1/checkouts/x/stream?a=1&client_secret=${encodeURIComponent(SECRET)}&b=2`,
    `/v1/checkouts/x/stream?CLIENT_SECRET=${SECRET}#frag`,
    `Reply was already sent, did you forget to "return reply" in the "/v1/checkouts/x/stream?client_secret=${SECRET}" (GET) route?`,
    `{"url":"/s?client_secret=${SECRET}","secret":"${SECRET}"}`,
    // A path the client percent-encoded itself, as the access line quotes it.
    `GET /v1/checkouts/${SECRET.replaceAll('_', '%5F')}/stream 404 1 ms`,
    `GET /v1/checkouts/x/stream?client%5Fsecret=${SECRET} 401 1 ms`,
  ])('removes the secret from %j', (line) => {
    const scrubbed = scrubSecrets(line);
    expect(scrubbed).not.toContain(SIGNATURE);
    expect(scrubbed).not.toContain(encodeURIComponent(SIGNATURE));
  });

  it('keeps what is not a secret', () => {
    const line = '{"msg":"GET /v1/checkouts/chk_1/stream 200 3 ms","client_secret":"[redacted]"}';
    expect(scrubSecrets(line)).toBe(line);
    expect(scrubSecrets('/s?client_secret=')).toBe('/s?client_secret=[redacted]');
  });

  it("redacts the raw request head of a parser error (Node's rawPacket)", () => {
    const { lines, log } = capturedLogger();
    const rawPacket = [
      ...Buffer.from(`GET /s?client_secret=${SECRET} HTTP/1.1\r\nauthorization: Bearer bpk_x\r\n`),
    ];
    log.info({ err: { message: 'Parse Error', rawPacket } }, 'client error');
    expect(lines.join('')).not.toContain(String(rawPacket.slice(0, 20)));
    expect(lines.join('')).toContain('[redacted]');
  });

  it('is applied to every line a logger made with loggerOptions writes', () => {
    const { lines, log } = capturedLogger();
    log.child({ reqId: 'r' }).warn({ url: `/s?client_secret=${SECRET}` }, `in the message: ${SECRET}`);
    log.error({ err: new Error(`GET /s?client_secret=${SECRET} failed`) }, 'an error');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain(SIGNATURE);
    expect(lines.join('')).toContain('client_secret=[redacted]');
  });

  it('removes a webhook signing secret (whsec_…) from fields and messages', () => {
    const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4VsMwHBnzCE=';
    const { lines, log } = capturedLogger();
    log.info({ secret: whsec, endpoint: { secret: whsec, secretSealed: 'v2.x.y.z.w' } }, `made ${whsec}`);
    log.warn({ detail: `a body quoting ${whsec} in passing` }, 'odd');
    const text = lines.join('');
    expect(text).not.toContain('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4VsMwHBnzCE');
    expect(text).not.toContain('v2.x.y.z.w');
    expect(text).toContain('whsec_[redacted]');
  });
});
