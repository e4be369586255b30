// Who this reader is to the server: what the stream's hello said (id,
// token, colour, whether only watching, the server's manners), and the
// token kept to resume the ghost after a reload.
import { read, write } from "./storage.js";

/** `shared`: the tabs of this browser are one reader, so the token is kept
 * for the whole browser; else for this tab alone, or two tabs would take
 * one ghost from each other. */
export function session(slug, shared) {
  const key = "ghostread:token:" + slug;
  const store = function () {
    return shared ? localStorage : sessionStorage;
  };
  /** { id, token, color, watching, resting }, or null before hello. */
  let me = null;
  /** Seconds without scrolling before this reader is away, and seconds a
   * hidden tab keeps its stream, in milliseconds. */
  let awayAfterMs = 90000;
  let letGoMs = 120000;

  return {
    me: function () {
      return me;
    },
    awayAfterMs: function () {
      return awayAfterMs;
    },
    letGoMs: function () {
      return letGoMs;
    },
    greet: function (hello) {
      me = { id: hello.id, token: hello.token, color: hello.color, watching: !!hello.watching };
      if (hello.away_after > 0) awayAfterMs = hello.away_after * 1000;
      if (hello.let_go > 0) letGoMs = hello.let_go * 1000;
      write(store(), key, hello.token);
    },
    /** The hello this session started from, for a tab that joins later. */
    hello: function () {
      if (!me) return null;
      return JSON.stringify({ id: me.id, token: me.token, color: me.color, watching: me.watching, away_after: awayAfterMs / 1000, let_go: letGoMs / 1000 });
    },
    /** Until a stream says hello again, this ghost may be held or gone:
     * nothing more is reported for it. */
    rest: function () {
      if (me) me.resting = true;
    },
    /** The server no longer knows this ghost; `forgetToken` also stops the
     * next stream from trying to resume it. */
    forget: function (forgetToken) {
      me = null;
      if (forgetToken) write(store(), key, null);
    },
    /** The token to resume with: this page's, else the one kept. */
    token: function () {
      return (me && me.token) || read(store(), key);
    },
  };
}
