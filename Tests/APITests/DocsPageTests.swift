@testable import API
import Testing

@Suite("The /docs page")
struct DocsPageTests {
    @Test("loads nothing from another site: no absolute URLs, no external scripts, styles, fonts or images")
    func selfContained() {
        let page = DocsPage.html.lowercased()
        #expect(!page.contains("http://"))
        #expect(!page.contains("https://"))
        #expect(!page.contains("<script src"))
        #expect(!page.contains("<link"))
        #expect(!page.contains("@import"))
        #expect(!page.contains("url("))
        // Every href or src is a path on this origin: "/x", never "//host/x" or "scheme:…".
        for match in page.matches(of: #/(?:href|src)\s*=\s*["']?([^"'\s>]*)/#) {
            let target = String(match.output.1)
            #expect(target.hasPrefix("/") && !target.hasPrefix("//"), "\(target)")
        }
    }

    @Test("renders /openapi.json, fetched from its own origin")
    func readsTheDocument() {
        #expect(DocsPage.html.hasPrefix("<!doctype html>"))
        #expect(DocsPage.html.hasSuffix("</html>"))
        #expect(DocsPage.html.contains(#"const SPEC_URL = "/openapi.json";"#))
        #expect(DocsPage.html.contains("fetch(SPEC_URL"))
    }

    @Test("puts text from the document or a response into the DOM as text, never as HTML")
    func noMarkupSinks() {
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            #expect(!DocsPage.html.contains(sink), "\(sink)")
        }
    }
}
