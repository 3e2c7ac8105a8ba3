/**
 * Request validation. JSON bodies are taken as sent: a string is not an amount, and unknown fields
 * are errors (house convention 1). Query strings, path parameters and headers arrive as text, so
 * those are coerced to the schema's types (`?limit=20` is the integer 20).
 */
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

const COMMON: Options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false };

export function registerValidators(app: FastifyInstance): void {
  const strict = new Ajv({ ...COMMON, coerceTypes: false });
  const coercing = new Ajv({ ...COMMON, coerceTypes: 'array' });
  for (const ajv of [strict, coercing]) addFormats.default(ajv);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema),
  );
}
