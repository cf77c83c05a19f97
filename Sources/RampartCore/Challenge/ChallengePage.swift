/// The pages a challenged client sees: self-contained (no external scripts, fonts or images),
/// in English or Lithuanian by `Accept-Language`, readable by screen readers (a live status line,
/// no CAPTCHA images), and usable without JavaScript (a server-timed wait with a meta refresh).
public enum ChallengePage {
    /// The page's language.
    public enum Language: String, Sendable {
        case en, lt
    }

    /// Lithuanian when the client prefers it over English, else English.
    public static func language(acceptLanguage: String?) -> Language {
        guard let header = acceptLanguage else { return .en }
        var best: (Language, Double)? = nil
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";")
            let tag = parts.first.map { $0.trimmingSpaces().lowercased() } ?? ""
            var q = 1.0
            for p in parts.dropFirst() {
                let t = p.trimmingSpaces()
                if t.hasPrefix("q="), let v = Double(t.dropFirst(2)) { q = v }
            }
            let lang: Language? = tag.hasPrefix("lt") ? .lt : (tag.hasPrefix("en") ? .en : nil)
            if let lang, q > (best?.1 ?? 0) { best = (lang, q) }
        }
        return best?.0 ?? .en
    }

    struct Text {
        let title, heading, explain, working, done, failed, noscript, proceed, waitTitle, waitExplain, requestID: String
    }

    static func text(_ l: Language) -> Text {
        switch l {
        case .en:
            return Text(
                title: "Checking your browser",
                heading: "One moment, please",
                explain: "This site is under heavy load. Your browser is doing a short calculation to show that it is not part of an attack. It takes about a second and you will then be taken to the page you asked for.",
                working: "Checking…",
                done: "Done. Opening the page…",
                failed: "The check could not finish. Please reload the page.",
                noscript: "JavaScript is turned off. You will be let in automatically in %d seconds.",
                proceed: "Continue",
                waitTitle: "Please wait",
                waitExplain: "You will be let in automatically in %d seconds.",
                requestID: "Request ID"
            )
        case .lt:
            return Text(
                title: "Tikrinama jūsų naršyklė",
                heading: "Prašome palaukti akimirką",
                explain: "Ši svetainė šiuo metu labai apkrauta. Jūsų naršyklė atlieka trumpą skaičiavimą, kuris parodo, kad ji nėra atakos dalis. Tai užtrunka apie sekundę, po to atsivers jūsų prašytas puslapis.",
                working: "Tikrinama…",
                done: "Atlikta. Atidaromas puslapis…",
                failed: "Patikrinimo nepavyko užbaigti. Įkelkite puslapį iš naujo.",
                noscript: "JavaScript išjungtas. Būsite įleisti automatiškai po %d s.",
                proceed: "Tęsti",
                waitTitle: "Prašome palaukti",
                waitExplain: "Būsite įleisti automatiškai po %d s.",
                requestID: "Užklausos ID"
            )
        }
    }

    static let style = "body{font:17px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#1b1b1b;background:#fff}h1{font-size:1.5em}a{color:#0b57d0}small{color:#555}@media(prefers-color-scheme:dark){body{background:#121212;color:#eee}a{color:#8ab4f8}small{color:#aaa}}"

    /// The proof-of-work page. `challenge` is the signed stamp; `waitURL` the no-JS fallback.
    public static func proofOfWork(
        language: Language, challenge: String, difficulty: Int, returnTo: String, waitURL: String, waitSeconds: Int, requestID: String
    ) -> String {
        ProofOfWorkTemplate(language: language, difficulty: difficulty, waitSeconds: waitSeconds)
            .render(challenge: challenge, returnTo: returnTo, waitURL: waitURL, requestID: requestID)
    }

    /// The page with its per-request values given as they go into it (already escaped for HTML or
    /// for the script as their places need). ``ProofOfWorkTemplate`` renders it once with markers.
    static func proofOfWorkPage(
        language: Language, difficulty: Int, waitSeconds: Int, challenge: String, answerURLInScript: String, waitURLInHTML: String,
        requestID: String
    ) -> String {
        let t = text(language)
        let noscript = t.noscript.replacingPercentD(waitSeconds)
        return """
            <!doctype html><html lang="\(language.rawValue)"><head><meta charset="utf-8">\
            <meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">\
            <title>\(t.title)</title><noscript><meta http-equiv="refresh" content="\(waitSeconds);url=\(waitURLInHTML)"></noscript>\
            <style>\(style)</style></head><body><main><h1>\(t.heading)</h1><p>\(t.explain)</p>\
            <p id="status" role="status" aria-live="polite">\(t.working)</p>\
            <noscript><p>\(noscript) <a href="\(waitURLInHTML)">\(t.proceed)</a></p></noscript>\
            <p><small>\(t.requestID): \(requestID)</small></p></main>\
            <script>\(solverScript(challenge: challenge, difficulty: difficulty, answerURLInScript: answerURLInScript, done: t.done, failed: t.failed))</script>\
            </body></html>

            """
    }

    /// The no-JavaScript wait page (also shown when a ticket comes back too early).
    public static func wait(language: Language, waitURL: String, seconds: Int, requestID: String) -> String {
        let t = text(language)
        return """
            <!doctype html><html lang="\(language.rawValue)"><head><meta charset="utf-8">\
            <meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">\
            <meta http-equiv="refresh" content="\(seconds);url=\(ErrorPage.escapeHTML(waitURL))">\
            <title>\(t.waitTitle)</title><style>\(style)</style></head><body><main><h1>\(t.waitTitle)</h1>\
            <p role="status">\(t.waitExplain.replacingPercentD(seconds))</p><p><a href="\(ErrorPage.escapeHTML(waitURL))">\(t.proceed)</a></p>\
            <p><small>\(t.requestID): \(requestID)</small></p></main></body></html>

            """
    }

    /// A short body for the cookie-check redirect (clients that do not follow redirects see a link).
    public static func redirect(language: Language, location: String) -> String {
        let t = text(language)
        return "<!doctype html><html lang=\"\(language.rawValue)\"><head><meta charset=\"utf-8\"><title>\(t.heading)</title></head><body><p><a href=\"\(ErrorPage.escapeHTML(location))\">\(t.proceed)</a></p></body></html>\n"
    }

    /// SHA-256 in plain JavaScript (the Web Crypto API is missing on plain-HTTP pages), searching
    /// answers in slices so the page stays responsive, then following the answer URL.
    static func solverScript(challenge: String, difficulty: Int, answerURLInScript: String, done: String, failed: String) -> String {
        """
        (function(){"use strict";var K=[1116352408,1899447441,3049323471,3921009573,961987163,1508970993,2453635748,2870763221,\
        3624381080,310598401,607225278,1426881987,1925078388,2162078206,2614888103,3248222580,3835390401,4022224774,264347078,\
        604807628,770255983,1249150122,1555081692,1996064986,2554220882,2821834349,2952996808,3210313671,3336571891,3584528711,\
        113926993,338241895,666307205,773529912,1294757372,1396182291,1695183700,1986661051,2177026350,2456956037,2730485921,\
        2820302411,3259730800,3345764771,3516065817,3600352804,4094571909,275423344,430227734,506948616,659060556,883997877,\
        958139571,1322822218,1537002063,1747873779,1955562222,2024104815,2227730452,2361852424,2428436474,2756734187,3204031479,\
        3329325298];var W=new Int32Array(64);function r(x,n){return x>>>n|x<<(32-n)}\
        function sha(s){var n=s.length,L=((n+9+63)>>6)<<6,b=new Uint8Array(L),i,j;for(i=0;i<n;i++)b[i]=s.charCodeAt(i);b[n]=128;\
        var bits=n*8;b[L-1]=bits&255;b[L-2]=(bits>>>8)&255;b[L-3]=(bits>>>16)&255;\
        var h0=1779033703,h1=-1150833019,h2=1013904242,h3=-1521486534,h4=1359893119,h5=-1694144372,h6=528734635,h7=1541459225;\
        for(j=0;j<L;j+=64){for(i=0;i<16;i++)W[i]=b[j+4*i]<<24|b[j+4*i+1]<<16|b[j+4*i+2]<<8|b[j+4*i+3];\
        for(i=16;i<64;i++){var x=W[i-15],y=W[i-2];W[i]=((r(x,7)^r(x,18)^(x>>>3))+W[i-16]+(r(y,17)^r(y,19)^(y>>>10))+W[i-7])|0}\
        var a=h0,c=h1,d=h2,e=h3,f=h4,g=h5,h=h6,k=h7;for(i=0;i<64;i++){var t1=(k+(r(f,6)^r(f,11)^r(f,25))+((f&g)^(~f&h))+K[i]+W[i])|0,\
        t2=((r(a,2)^r(a,13)^r(a,22))+((a&c)^(a&d)^(c&d)))|0;k=h;h=g;g=f;f=(e+t1)|0;e=d;d=c;c=a;a=(t1+t2)|0}\
        h0=(h0+a)|0;h1=(h1+c)|0;h2=(h2+d)|0;h3=(h3+e)|0;h4=(h4+f)|0;h5=(h5+g)|0;h6=(h6+h)|0;h7=(h7+k)|0}return [h0,h1]}\
        function zeros(v){var z=Math.clz32(v[0]);return z<32?z:32+Math.clz32(v[1])}\
        var C="\(challenge)",D=\(difficulty),n=0,st=document.getElementById("status");\
        function step(){var end=n+20000;for(;n<end;n++){if(zeros(sha(C+n))>=D){st.textContent="\(escapeJS(done))";\
        location.replace("\(answerURLInScript)"+n);return}}if(n>67108864){st.textContent="\(escapeJS(failed))";return}setTimeout(step,0)}\
        step()})();
        """
    }

    static func escapeJS(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "<": out += "\\u003c"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

extension String {
    func replacingPercentD(_ n: Int) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: "%d") {
            out += rest[..<r.lowerBound]
            out += String(n)
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}

/// The proof-of-work page split once into its fixed text and the places of the per-request values
/// (challenge, answer URL, wait URL, request id): a page then costs an escape of two URLs and one
/// pass of copying, not the escaping and interpolation of the whole page. One per language and
/// settings, kept per event loop.
public struct ProofOfWorkTemplate: Sendable {
    enum Slot: Sendable { case challenge, answerURL, waitURL, requestID }
    private let parts: [String]
    private let slots: [Slot]
    private let fixedBytes: Int

    private static let markers: [(String, Slot)] = [
        ("\u{E000}", .challenge), ("\u{E001}", .answerURL), ("\u{E002}", .waitURL), ("\u{E003}", .requestID),
    ]

    public init(language: ChallengePage.Language, difficulty: Int, waitSeconds: Int) {
        let marked = ChallengePage.proofOfWorkPage(
            language: language, difficulty: difficulty, waitSeconds: waitSeconds, challenge: Self.markers[0].0,
            answerURLInScript: Self.markers[1].0, waitURLInHTML: Self.markers[2].0, requestID: Self.markers[3].0
        )
        var parts: [String] = []
        var slots: [Slot] = []
        var current = ""
        for scalar in marked.unicodeScalars {
            if let slot = Self.markers.first(where: { $0.0.unicodeScalars.first == scalar })?.1 {
                parts.append(current)
                slots.append(slot)
                current = ""
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        parts.append(current)
        self.parts = parts
        self.slots = slots
        self.fixedBytes = parts.reduce(0) { $0 + $1.utf8.count }
    }

    /// The page for one request.
    public func render(challenge: String, returnTo: String, waitURL: String, requestID: String) -> String {
        let answerURL = ChallengePage.escapeJS("\(ChallengeRoutes.pow)?r=\(PercentCoding.encode(returnTo))&c=\(challenge)&a=")
        let wait = ErrorPage.escapeHTML(waitURL)
        var out = ""
        out.reserveCapacity(fixedBytes + 2 * wait.utf8.count + answerURL.utf8.count + challenge.utf8.count + requestID.utf8.count)
        for (i, slot) in slots.enumerated() {
            out += parts[i]
            switch slot {
            case .challenge: out += challenge
            case .answerURL: out += answerURL
            case .waitURL: out += wait
            case .requestID: out += requestID
            }
        }
        out += parts[parts.count - 1]
        return out
    }
}
