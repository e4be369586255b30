// This reader's presence: where it reads, whether it is away (every tab
// hidden or idle), and, once every tab has been hidden for long, letting
// the stream go. Only a shown tab reports its position; an invisible
// reader sends nothing.

/** The fastest this client reports its position. */
const SEND_EVERY_MS = 100;

export function presence(page) {
  let lastActivity = performance.now();
  let idleTimer = null;
  let letGoTimer = null;
  /** Whether the stream was let go because every tab was hidden. */
  let letGone = false;
  let lastSent = null;
  let lastSendAt = -Infinity;
  let sendTimer = null;
  let quietUntil = 0;
  /** Whether the server was last told this reader is away. */
  let awaySent = null;

  /** This tab is shown and its reader has done something lately. */
  function active() {
    return !document.hidden && performance.now() - lastActivity < page.session.awayAfterMs();
  }

  /** Whether every tab of this reader is hidden or idle: the ghost is away. */
  function away() {
    return !active() && !page.tabs.anyActive();
  }

  function watchIdle() {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(function () {
      if (!active()) page.tabs.activityChanged();
    }, page.session.awayAfterMs() + 50);
  }

  /** Every tab has been hidden for long: the stream closes and the ghost
   * leaves; a tab shown again opens it anew (resuming when it can). */
  function letGo() {
    if (!page.tabs.leads()) return;
    letGone = true;
    page.connection.goodbye();
    page.connection.close();
  }

  /** Sends the position at most every 100 ms, always the newest (trailing
   * edge). */
  function reportSoon() {
    const me = page.session.me();
    if (sendTimer || !me || me.watching || me.resting || document.hidden) return;
    const wait = Math.max(lastSendAt + SEND_EVERY_MS - performance.now(), quietUntil - performance.now(), 0);
    sendTimer = setTimeout(function () {
      sendTimer = null;
      if (document.hidden) return;
      const pos = page.layout.readingPosition();
      if (pos === lastSent && awaySent === false) return;
      report(false, false);
    }, wait);
  }

  /** Tells the server where this reader is, whether it is away, and (a
   * leader giving its connection up) to hold its ghost meanwhile. */
  function report(isAway, hold) {
    const me = page.session.me();
    if (!me || me.watching || me.resting) return;
    // A hidden tab's own scroll position is not where the reader is.
    const kept = page.tabs.lastPos();
    const pos = document.hidden && kept !== null ? kept : page.layout.readingPosition();
    lastSent = pos;
    if (!document.hidden) page.tabs.notePos(pos);
    awaySent = isAway;
    lastSendAt = performance.now();
    if (page.drawing.crowded()) page.drawing.request(); // This reader left one block's band for another.
    const body = { token: me.token, pos: pos, away: isAway };
    if (hold) body.hold = true;
    return page.connection.report(body).then(
      function (response) {
        if (response.status === 204) return;
        lastSent = null;
        if (response.status === 410) {
          // The server no longer knows this ghost (it restarted, or the
          // stream ended): reopen the stream, resuming when it can.
          page.session.forget(false);
          if (page.tabs.leads() && !page.connection.polling()) page.connection.connect();
        } else if (response.status === 429) {
          const seconds = Number(response.headers.get("retry-after")) || 1;
          quietUntil = performance.now() + seconds * 1000;
          reportSoon();
        }
      },
      function () {
        lastSent = null; // Offline for a moment; the next scroll retries.
      }
    );
  }

  return {
    active: active,
    away: away,
    report: report,
    reportSoon: reportSoon,
    letGone: function () {
      return letGone;
    },
    /** The position the server counts this reader at, or null. */
    lastSent: function () {
      return lastSent;
    },
    /** A new or resumed ghost: say where this reader is. */
    greeted: function () {
      lastSent = null;
      awaySent = null;
      watchIdle();
      reportSoon();
    },
    /** The reader scrolled, typed or touched. */
    noteActivity: function () {
      const was = active();
      lastActivity = performance.now();
      watchIdle();
      if (!was && active()) page.tabs.activityChanged();
    },
    /** The tab is shown again: active now, and its position is news. */
    shown: function () {
      lastActivity = performance.now();
      watchIdle();
      lastSent = null;
    },
    /** The leader: says away or back when that changed, and lets go of the
     * stream once every tab has been hidden for `let_go`. */
    changed: function () {
      if (!page.tabs.leadsAwake()) return;
      const shown = !document.hidden || page.tabs.anyShown();
      clearTimeout(letGoTimer);
      if (!shown && !letGone) {
        letGoTimer = setTimeout(letGo, page.session.letGoMs());
      } else if (shown && letGone) {
        letGone = false;
        page.connection.connect();
      }
      const gone = away();
      if (page.session.me() && gone !== awaySent) report(gone, false);
    },
    /** The stream must start anew (the reader turned invisible or back). */
    reconnect: function () {
      if (page.tabs.leads() && !letGone) page.connection.connect();
    },
  };
}
