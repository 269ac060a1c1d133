import { describe, expect, it } from "vitest";
import { cleanEmailHtml } from "./sanitize";

const part = "/api/v1/emails/0190c7c4-0000-7000-8000-000000000001/parts/2";

describe("cleanEmailHtml", () => {
  it("holds back every remote fetch until asked: images, srcset, backgrounds and CSS urls", () => {
    const raw = `
      <p style="background-image: url('https://tracker.example/a.png'); color: red">Hi</p>
      <style>.x { background: url(http://tracker.example/b.png) }</style>
      <img src="https://tracker.example/pixel.gif" alt="pixel">
      <img srcset="https://tracker.example/c.png 2x">
      <table><tr><td background="//tracker.example/d.png">cell</td></tr></table>
      <img src="${part}" alt="inline">`;
    const held = cleanEmailHtml(raw, false);
    expect(held.html).not.toMatch(/tracker\.example/);
    expect(held.blocked).toBe(5);
    expect(held.html).toContain(`data-part-src="${part}"`);
    expect(held.html).toContain("color: red");

    const shown = cleanEmailHtml(raw, true);
    expect(shown.blocked).toBe(0);
    expect(shown.html).toContain("https://tracker.example/pixel.gif");
    expect(shown.html).toContain("url('https://tracker.example/a.png')");
  });

  it("drops scripts, handlers, forms and javascript: links, and opens links away from the app", () => {
    const raw = `<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">a</a>
      <a href="https://client.example/page">b</a><form action="https://evil.example"><input name=q></form>
      <svg><script>alert(4)</script></svg><iframe src="https://evil.example"></iframe>`;
    const { html } = cleanEmailHtml(raw, true);
    expect(html).not.toMatch(/alert|onerror|javascript:|<form|<input|<iframe|<script/i);
    expect(html).toContain('href="https://client.example/page"');
    expect(html).toContain('rel="noopener noreferrer nofollow"');
    expect(html).toContain('target="_blank"');
  });

  it("drops CSS that could name a remote address through escapes or image-set", () => {
    const raw = `<p style="background: u\\72l(https://tracker.example/e.png)">x</p><p style="background-image: image-set('//tracker.example/f.png' 1x)">y</p>`;
    const held = cleanEmailHtml(raw, false);
    expect(held.html).not.toMatch(/tracker/);
    expect(held.blocked).toBe(2);
  });

  it("keeps relative and other-scheme image sources out, whether or not remote images are allowed", () => {
    const { html } = cleanEmailHtml(`<img src="/api/v1/me"><img src="file:///etc/passwd"><img src="data:image/png;base64,AAAA">`, true);
    expect(html).not.toContain("/api/v1/me");
    expect(html).not.toContain("file:");
    expect(html).toContain("data:image/png;base64,AAAA");
  });
});
