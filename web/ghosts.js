// ghostread's own post pages: everything is where the server put it. The
// client itself is in client/ (start.js names its parts); embed.js starts
// the same client on other sites' pages.
import { overHttp1, start } from "./client/start.js";

const article = document.querySelector("article[data-slug][data-blocks]");
const lane = document.querySelector("[data-ghost-lane]");
if (article && lane) {
  const blocks = Array.from(article.querySelectorAll("[data-block]"));
  const navigation = performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
  start({
    slug: article.dataset.slug,
    article: article,
    blocks: blocks,
    blockCount: Number(article.dataset.blocks) || blocks.length,
    lane: lane,
    reader: lane.parentElement,
    controls: document.querySelector(".post-footer p"),
    root: document,
    hideRoot: document.documentElement,
    base: "",
    http1: overHttp1(navigation[0]),
  });
}
