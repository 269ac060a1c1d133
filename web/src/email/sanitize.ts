// Email HTML as the app shows it. The hub has sanitised it already (ammonia); it is cleaned
// once more here, and everything that would fetch from elsewhere — images, backgrounds,
// CSS `url(...)` — is held back until the reader asks, since a remote image tells the sender
// that and when the mail was opened. The hub's own part URLs (inline images) are kept:
// the viewer loads them with the session's token.
import DOMPurify from "dompurify";

export interface CleanEmail {
  html: string;
  /** Remote resources held back (0 when `allowRemote`). */
  blocked: number;
}

const REMOTE = /^\s*(https?:)?\/\//i;
const CSS_URL = /url\(\s*(['"]?)(.*?)\1\s*\)/gi;
const PART_URL = /^\/api\/v1\/emails\/[0-9a-f-]{36}\/parts\/\d+$/i;

function holdCss(css: string, allowRemote: boolean, count: () => void): string {
  const held = css.replace(CSS_URL, (whole, _quote: string, url: string) => {
    if (REMOTE.test(url) && !allowRemote) {
      count();
      return "none";
    }
    return REMOTE.test(url) || url.startsWith("data:") ? whole : "none";
  });
  // Escapes (`u\72l(`), image-set() strings and the like could still name a remote
  // address: such CSS goes whole. (The frame's own policy refuses remote images anyway.)
  if (!allowRemote && (held.includes("\\") || /(https?:)?\/\//i.test(held))) {
    count();
    return "";
  }
  return held;
}

export function cleanEmailHtml(raw: string, allowRemote: boolean): CleanEmail {
  let blocked = 0;
  const count = () => {
    blocked += 1;
  };
  const purify = DOMPurify();
  purify.addHook("afterSanitizeAttributes", (node) => {
    const element = node as Element;
    for (const name of ["src", "background", "poster"]) {
      const value = element.getAttribute(name);
      if (value === null) continue;
      if (REMOTE.test(value)) {
        if (!allowRemote) {
          element.removeAttribute(name);
          element.setAttribute(`data-held-${name}`, "");
          count();
        }
      } else if (name === "src" && PART_URL.test(value)) {
        // Loaded by the viewer with the session's token (an <img> cannot send one).
        element.removeAttribute(name);
        element.setAttribute("data-part-src", value);
      } else if (!(name === "src" && value.startsWith("data:image/"))) {
        element.removeAttribute(name);
      }
    }
    if (element.hasAttribute("srcset")) {
      if (!allowRemote) count();
      element.removeAttribute("srcset");
    }
    const style = element.getAttribute("style");
    if (style) element.setAttribute("style", holdCss(style, allowRemote, count));
    if (element.tagName === "A") {
      element.setAttribute("target", "_blank");
      element.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  purify.addHook("uponSanitizeElement", (node, data) => {
    if (data.tagName === "style" && node.textContent) {
      node.textContent = holdCss(node.textContent, allowRemote, count);
    }
  });
  const html = purify.sanitize(raw, {
    FORBID_TAGS: ["form", "input", "button", "textarea", "select", "iframe", "object", "embed", "link", "meta", "base"],
    FORBID_ATTR: ["action", "formaction"],
    ADD_ATTR: ["target", "data-part-src"],
    WHOLE_DOCUMENT: false,
  });
  return { html, blocked };
}
