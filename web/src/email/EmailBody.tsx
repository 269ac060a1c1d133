import { useEffect, useMemo, useRef, useState } from "react";
import { api } from "../api/client";
import { cleanEmailHtml } from "./sanitize";

/** The frame's own policy, on top of the app's: the browser refuses remote images until asked. */
function frameCsp(allowRemote: boolean): string {
  const images = allowRemote ? "data: blob: https:" : "data: blob:";
  return `default-src 'none'; style-src 'unsafe-inline'; img-src ${images}; font-src data:`;
}

const FRAME_STYLE = `<style>body{margin:0;font:14px/1.5 system-ui,sans-serif;color:#0f172a;overflow-wrap:anywhere}img{max-width:100%;height:auto}</style>`;

/**
 * An email's HTML in a frame of its own: no scripts can run there (sandbox without
 * `allow-scripts`), its CSS cannot touch the app, remote content waits for the reader.
 */
export function EmailHtml({ html }: { html: string }) {
  const [allowRemote, setAllowRemote] = useState(false);
  const clean = useMemo(() => cleanEmailHtml(html, allowRemote), [html, allowRemote]);
  const frame = useRef<HTMLIFrameElement>(null);
  const [height, setHeight] = useState(80);

  useEffect(() => {
    const iframe = frame.current;
    if (!iframe) return;
    const urls: string[] = [];
    const onLoad = async () => {
      const doc = iframe.contentDocument;
      if (!doc) return;
      setHeight(doc.documentElement.scrollHeight);
      for (const img of Array.from(doc.querySelectorAll<HTMLImageElement>("img[data-part-src]"))) {
        const path = img.getAttribute("data-part-src");
        if (!path) continue;
        const match = /^\/api\/v1\/emails\/([0-9a-f-]{36})\/parts\/(\d+)$/i.exec(path);
        if (!match?.[1] || !match[2]) continue;
        const answer = await api.GET("/api/v1/emails/{id}/parts/{position}", {
          params: { path: { id: match[1], position: Number(match[2]) } },
          parseAs: "blob",
        });
        if (answer.data instanceof Blob) {
          const url = URL.createObjectURL(answer.data);
          urls.push(url);
          img.src = url;
          img.onload = () => setHeight(doc.documentElement.scrollHeight);
        }
      }
    };
    iframe.addEventListener("load", onLoad);
    return () => {
      iframe.removeEventListener("load", onLoad);
      for (const url of urls) URL.revokeObjectURL(url);
    };
  }, [clean.html]);

  return (
    <div>
      {clean.blocked > 0 && (
        <p className="mb-2 flex items-center gap-2 rounded bg-slate-100 px-2 py-1 text-sm text-slate-700">
          Remote images are hidden ({clean.blocked}).
          <button type="button" className="text-blue-700 underline" onClick={() => setAllowRemote(true)}>
            Show them
          </button>
        </p>
      )}
      <iframe
        ref={frame}
        title="Email content"
        sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"
        srcDoc={`<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${frameCsp(allowRemote)}">${FRAME_STYLE}</head><body>${clean.html}</body></html>`}
        style={{ height }}
        className="w-full border-0 bg-white"
      />
    </div>
  );
}
