// Pure payload builders (no DOM, no clock): the contract is contract/event-v1.schema.json.
// RFC 4122 v4: a random digit per x, the version digit 4, the variant digit 8-b (rnd(k): k random bytes)
export const uuid = (rnd) =>
  "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) => (c ^ (rnd(1)[0] & (15 >> (c / 4)))).toString(16));

// ctx: the fields every event carries, named as in the contract (room_id, visitor_id, session_id, token,
// url, referrer); fields: type-specific (content_id, engaged_ms, ...). Null, false and empty values are left out.
export const buildEvent = (type, fields, ctx, now, rnd) => {
  const e = { event_id: uuid(rnd), type, ...ctx, ts: now, ...fields };
  for (const k in e) if (e[k] == null || e[k] === "" || e[k] === false) delete e[k];
  return e;
};

export const buildBatch = (site, events, now) => ({ v: 1, site, sent_at: now, events });
