// Visibility and page crediting (pure: shares of screen as numbers, an explicit now). The tracker measures
// with an IntersectionObserver (the browser clips by the viewport and every scrolling ancestor); the rules
// live here.
const M = Math;

// A sampler over the marked-up items: {c: content id, p: page number (pages only), n: declared page count,
// own: the share of the element that is visible, scr: the share of its box (the viewport, or the visible
// part of the pane it scrolls in) that it covers}.
// - a content item is viewed once it held >= min of itself or of its box for dwell ms (any size, any pane);
// - a page is reached the first time it does; progress_pct = distinct pages reached / the page count;
// - engaged time goes to the content covering most of its box and to its page covering most: the
//   returned key is "content" or "content page" ("" when nothing marked up is in view).
export const createViews = (dwell = 1000, min = 0.5) => {
  let since = {};
  const seen = {};
  const got = {};
  return (now, items) => {
    const out = [];
    const next = {};
    const top = {};
    let best = 0;
    let k = "";
    for (const { c, p, n, own, scr } of items) {
      const key = p ? c + " " + p : c;
      if (M.max(own, scr) >= min && !seen[key] && now - (next[key] = since[key] ?? now) >= (p ? 0 : dwell))
        seen[key] = out.push(p ? ["content_progress", { content_id: c, page: p,
          progress_pct: M.min(100, (100 * (got[c] = -~got[c])) / M.max(n, p)) }] : ["content_view", { content_id: c }]);
      if (p) scr > (top[c]?.[1] || 0) && (top[c] = [p, scr]);
      else if (scr > best) (best = scr), (k = c);
    }
    since = next;
    if (top[k]) k += " " + top[k][0];
    return [out, k];
  };
};
