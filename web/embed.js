// ghostread on a page of another site: one tag,
//   <script src="https://ghosts.blog.example/embed.js" defer></script>
// and the page's readers see each other as ghosts in its margin. This file
// only finds what differs from ghostread's own pages: the article and its
// blocks, the page's address, and a margin of its own (in a shadow root,
// so the site's CSS and the ghosts' do not touch); then it runs the same
// client as ghostread's pages (client/start.js) against the server it came from.
//
// Options, as data- attributes of the tag: data-article (a CSS selector
// for the article, when the guess is wrong), data-side ("left", the
// default, or "right": which margin the ghosts stand in), data-theme
// ("auto", "light" or "dark"). The wire contract is docs/PROTOCOL.md.
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || !window.fetch || !window.EventSource || !document.head.attachShadow) return;
  /** Where ghostread is: the script's own address without `/embed.js`, so
   * it may sit on a subdomain or under a path of the site's own proxy. */
  const base = script.src.split(/[?#]/)[0].replace(/\/embed\.js$/, "");
  const options = script.dataset;
  /** The margin's width, where there is room for it; a thin strip where not. */
  const LANE_PX = 56;
  const THIN_PX = 12;

  /** The article: the site's explicit choice, else the common generators'. */
  function findArticle() {
    const chosen = options.article ? document.querySelector(options.article) : null;
    return (
      chosen ||
      document.querySelector("[data-ghostread]") ||
      document.querySelector("article") ||
      document.querySelector("main") ||
      document.querySelector(".post-content, .entry-content, .post-body, .e-content, #content")
    );
  }

  /** The element whose children are the text's blocks: the article, or
   * the element inside it holding the most paragraphs of their own (a
   * theme's content wrapper). */
  function textOf(article) {
    let best = article;
    let most = paragraphs(article);
    for (const el of article.querySelectorAll("div, section")) {
      const n = paragraphs(el);
      if (n > most) {
        best = el;
        most = n;
      }
    }
    return best;
  }

  function paragraphs(el) {
    let n = 0;
    for (const child of el.children) if (child.tagName === "P") n += 1;
    return n;
  }

  /** The top-level blocks, in order, as ghostread's own pages number theirs. */
  function blocksOf(text) {
    const skip = ["SCRIPT", "STYLE", "TEMPLATE", "LINK", "META", "NOSCRIPT"];
    return Array.from(text.children).filter(function (el) {
      return skip.indexOf(el.tagName) < 0 && el.getClientRects().length > 0;
    });
  }

  /** The page's address: its canonical link on this origin, else where it is. */
  function address() {
    const link = document.querySelector('link[rel="canonical"]');
    if (link && link.href) {
      try {
        if (new URL(link.href).origin === location.origin) return link.href.split("#")[0];
      } catch (_) {
        // Not a URL: where the page is will do.
      }
    }
    return location.origin + location.pathname;
  }

  /** The embed's own look: the site's styles stop at the shadow root, and
   * none of the host page's inherited ones come in. */
  const THEME =
    ":host { all: initial; }\n" +
    ".box { --bg: #ffffff; --fg: #1f2328; --accent: #b4421f; --link: #0b57d0;" +
    " font: 13px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg); }\n" +
    ".box[data-theme=dark] { --bg: #16181d; --fg: #e6e6e6; --accent: #f08a5d; --link: #8ab4f8; }\n" +
    "@media (prefers-color-scheme: dark) { .box[data-theme=auto] { --bg: #16181d; --fg: #e6e6e6; --accent: #f08a5d; --link: #8ab4f8; } }\n" +
    ".reader, .ghost-lane { position: absolute; inset: 0; }\n" +
    ".controls { position: fixed; left: 8px; bottom: 8px; margin: 0; padding: 4px 10px;" +
    " border-radius: 999px; background: var(--bg); color: var(--fg);" +
    " box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); pointer-events: auto; z-index: 3; }\n";

  function sheet(text) {
    const made = new CSSStyleSheet();
    made.replaceSync(text);
    return made;
  }

  function begin() {
    const article = findArticle();
    if (!article) return;
    const text = textOf(article);
    const blocks = blocksOf(text);
    if (!blocks.length) return;
    blocks.forEach(function (el, i) {
      el.dataset.ghostreadBlock = String(i);
    });
    // The client loads while the page is registered.
    const client = import(base + "/web/client/start.js");
    client.catch(function () {});
    fetch(base + "/embed/page", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: address(), blocks: blocks.length }),
    })
      .then(function (response) {
        return response.status === 200 ? response.json() : null;
      })
      .catch(function () {
        return null;
      })
      .then(function (page) {
        if (page && page.slug) show(page, text, blocks, client);
      });
  }

  /** Draws the margin beside `text` and starts the client in it. */
  function show(page, text, blocks, client) {
    const host = document.createElement("div");
    host.id = "ghostread-embed";
    host.dataset.slug = page.slug;
    // Taken out of the page's flow: nothing on the page moves for it.
    host.style.position = "absolute";
    host.style.pointerEvents = "none";
    host.style.zIndex = "2147483000";
    host.style.left = "0px";
    host.style.top = "0px";
    const shadow = host.attachShadow({ mode: "open" });
    const box = document.createElement("div");
    box.className = "box";
    box.dataset.theme = ["light", "dark"].indexOf(options.theme) >= 0 ? options.theme : "auto";
    const reader = document.createElement("div");
    reader.className = "reader";
    const lane = document.createElement("aside");
    lane.className = "ghost-lane";
    reader.appendChild(lane);
    const controls = document.createElement("p");
    controls.className = "controls";
    const now = document.createElement("span");
    now.dataset.now = "";
    now.textContent = "0";
    controls.appendChild(now);
    controls.appendChild(document.createTextNode(" reading now"));
    box.appendChild(reader);
    box.appendChild(controls);
    shadow.appendChild(box);
    document.body.appendChild(host);
    let left = 0;
    let top = 0;
    const right = options.side === "right";
    /** Puts the margin beside the text as it is laid out now. */
    function place() {
      const at = text.getBoundingClientRect();
      const room = right ? document.documentElement.clientWidth - at.right : at.left;
      const width = room >= LANE_PX ? LANE_PX : Math.max(room, THIN_PX);
      const here = host.getBoundingClientRect();
      left += (right ? Math.min(at.right, at.right + room - width) : at.left - width) - here.left;
      top += at.top - here.top;
      host.style.left = left.toFixed(1) + "px";
      host.style.top = top.toFixed(1) + "px";
      host.style.width = width.toFixed(1) + "px";
      host.style.height = at.height.toFixed(1) + "px";
    }
    fetch(base + "/web/ghosts.css")
      .then(function (response) {
        return response.text();
      })
      .catch(function () {
        return "";
      })
      .then(function (css) {
        shadow.adoptedStyleSheets = [sheet(css), sheet(THEME)];
        return client.then(function (client) {
          const entry = performance.getEntriesByName ? performance.getEntriesByName(script.src)[0] : null;
          client.start({
            slug: page.slug,
            article: text,
            blocks: blocks,
            blockCount: blocks.length,
            lane: lane,
            reader: reader,
            controls: controls,
            root: shadow,
            hideRoot: box,
            base: base,
            http1: client.overHttp1(entry),
            beforeMeasure: place,
          });
        });
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", begin);
  else begin();
})();
