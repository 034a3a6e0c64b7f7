// Entry: <script defer src=".../snippet/v1/dealbeacon.js" data-site="KEY" data-room="ROOM"></script>
// Optional: data-endpoint (default: same origin as the script + /v1/events), data-heartbeat (ms, default
// 15000), data-consent="required" (nothing is tracked or sent until dealbeacon.consent(true)).
import { start } from "./tracker.js";

const s = document.currentScript;
const ds = s.dataset;
window.dealbeacon = start({
  site: ds.site,
  room: ds.room || document.querySelector("[data-db-room]")?.dataset.dbRoom,
  endpoint: ds.endpoint || new URL("/v1/events", s.src).href,
  heartbeat: +ds.heartbeat || 15000,
  consent: ds.consent,
});
