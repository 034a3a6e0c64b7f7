// Pure payload builders (no DOM, no clock): the contract is contract/event-v1.schema.json.
export const uuid = (rnd) => {
  const b = rnd(16);
  b[6] = (b[6] & 15) | 64; // version 4
  b[8] = (b[8] & 63) | 128; // RFC 4122 variant
  const h = [...b].map((x) => (x + 256).toString(16).slice(1)).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

// ctx: {room, visitor, session, token, url, referrer}; fields: type-specific (content_id, engaged_ms, ...)
export const buildEvent = (type, fields, ctx, now, rnd) => {
  const e = { event_id: uuid(rnd), type, room_id: ctx.room, visitor_id: ctx.visitor, session_id: ctx.session, ts: now };
  if (ctx.token) e.token = ctx.token;
  if (ctx.url) e.url = ctx.url.slice(0, 2048);
  if (ctx.referrer) e.referrer = ctx.referrer.slice(0, 2048);
  for (const k in fields) if (fields[k] != null) e[k] = fields[k];
  return e;
};

export const buildBatch = (site, events, now) => ({ v: 1, site, sent_at: now, events });
