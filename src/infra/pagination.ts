/**
 * Keyset pagination, newest first, for tables keyed by (created_at, id): the page after a cursor
 * row is every row older than it, or as old with a smaller id (ties broken by id, so no row is
 * skipped or shown twice however many share a creation time). Prisma `where` and `orderBy` parts.
 */

/** The rows after `cursor` in newest-first order; no condition without a cursor. */
export function olderThan(cursor: { createdAt: Date; id: string } | null | undefined) {
  return cursor
    ? {
        OR: [{ createdAt: { lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { lt: cursor.id } }],
      }
    : {};
}

/** Newest first, then by id: the order `olderThan` pages through. */
export function newestFirst(): Array<{ createdAt: 'desc' } | { id: 'desc' }> {
  return [{ createdAt: 'desc' }, { id: 'desc' }];
}
