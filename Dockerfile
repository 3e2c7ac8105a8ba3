# One image for the API, the worker, migrations and the sandbox bank (docker-compose.yml).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The Prisma client is generated at install time from the schema.
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY scripts/generate.ts ./scripts/generate.ts
RUN npm ci --no-audit --no-fund
COPY . .
USER node
EXPOSE 3000
CMD ["npm", "start"]
