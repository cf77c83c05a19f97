import Foundation

/// The operator's dashboard: one self-contained page (no external scripts, fonts, images or
/// trackers; the Content-Security-Policy forbids loading any), fed by the server-sent event
/// stream once a second, usable on a laptop and a phone.
enum Dashboard {
    /// The page's CSP: inline script and style only, calls to this origin only, never framed.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    /// The page a browser gets for `/?token=` with a wrong token (status 401): the sign-in form is
    /// shown at once with a line saying the token was refused.
    static let refusedPage = page
        .replacingOccurrences(of: #"<form id="login" method="#, with: #"<form id="login" class="show" method="#)
        .replacingOccurrences(of: #"<p id="refused" hidden>"#, with: #"<p id="refused">"#)

    /// The dashboard shell: the same for everyone; the data comes from the API once the cookie is set.
    static let page = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>Rampart</title>
        <style>
        :root{--bg:#f6f7f9;--card:#fff;--ink:#1b1f24;--muted:#5b6470;--line:#d9dde3;--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030;--blue:#2b6cb0}
        *{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--ink)}
        header{display:flex;gap:1em;align-items:center;padding:.7em 1em;background:#1b1f24;color:#fff;flex-wrap:wrap}
        header h1{font-size:1.1em;margin:0}#conn{font-size:.85em;color:#aab}
        main{padding:1em;display:grid;gap:1em;grid-template-columns:repeat(auto-fit,minmax(min(100%,30em),1fr))}
        section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8em 1em;min-width:0}
        h2{font-size:1em;margin:.1em 0 .6em}table{width:100%;border-collapse:collapse;font-size:.9em}
        td,th{padding:.25em .4em;border-bottom:1px solid var(--line);text-align:left;overflow-wrap:anywhere}th{color:var(--muted);font-weight:600}
        td.n{text-align:right;font-variant-numeric:tabular-nums}
        td.mono{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
        td.reports{font-size:.8em;white-space:nowrap}section.wide{grid-column:1/-1}
        .mode{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;color:#fff}
        .normal{background:var(--ok)}.elevated{background:var(--warn)}.under_attack{background:var(--bad)}
        canvas{width:100%;height:160px;display:block}.legend span{margin-right:1em;font-size:.85em}
        button,select,input{font:inherit;padding:.2em .5em}button.ban{color:var(--bad)}
        #login{display:none;max-width:30em;margin:3em auto}#login.show{display:block}
        .muted{color:var(--muted)}.bad{color:var(--bad);font-weight:600}
        </style></head>
        <body>
        <header><h1>Rampart</h1><span id="conn">connecting…</span><span id="bans" class="muted"></span><strong id="state" role="alert" hidden></strong></header>
        <form id="login" method="get" action="/"><section><h2>Sign in</h2>
        <p id="refused" hidden>That token was not accepted: the link may be from before the token changed.</p>
        <p><label for="token">Admin token</label><br><input id="token" name="token" type="password" autocomplete="current-password" size="40" required></p>
        <p><button type="submit">Open the dashboard</button></p>
        <p class="muted">The gateway prints a link with the token on its first start; the token is in the state folder's admin.token (or RAMPART_ADMIN_TOKEN, or the config's admin.token).</p></section></form>
        <main id="sites"></main>
        <main><section><h2>Top sources (last second)</h2><table id="topSources"></table></section>
        <section><h2>Top subnets, paths, TLS fingerprints, countries and networks</h2><table id="topOther"></table></section>
        <section class="wide"><h2>Incidents</h2><table id="incidents"></table></section>
        <section class="wide" id="fleet" hidden><h2>Fleet</h2><p id="fleetState"></p><table id="fleetNodes"></table></section></main>
        <script>
        "use strict";
        const history = {}; const N = 120;
        const series = [["requests","#6b46c1","received"],["to_origin","#2b6cb0","to origin"],["cache_served","#1f8a4c","cached"],["challenged","#b7791f","challenged"],["limited","#c53030","limited"]];
        function el(tag, attrs, text){const e=document.createElement(tag);for(const k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;return e}
        // Same-origin calls with the HttpOnly cookie: the browser adds this page's Origin, which
        // the gateway requires (with a JSON Content-Type) for every call that changes something.
        async function api(method, path, body){
          const r = await fetch(path,{method,mode:"same-origin",credentials:"same-origin",headers:{"Content-Type":"application/json"},body:body?JSON.stringify(body):undefined});
          if(r.status===401){showLogin();throw new Error("unauthorized")}
          if(r.status===403){const e=await r.json().catch(()=>({}));document.getElementById("conn").textContent="refused: "+(e.error||"forbidden");throw new Error("forbidden")}
          return r;
        }
        function showLogin(){document.getElementById("login").classList.add("show");document.getElementById("conn").textContent="sign in needed"}
        function siteCard(s){
          let card=document.getElementById("site-"+s.site);
          if(!card){
            card=el("section",{id:"site-"+s.site});
            card.innerHTML='<h2></h2><p><span class="mode"></span> <label>Mode <select aria-label="mode"><option value="auto">automatic</option><option value="normal">normal</option><option value="elevated">elevated</option><option value="under_attack">under attack</option></select></label> <span class="tier muted"></span></p><canvas width="600" height="160" role="img"></canvas><p class="legend"></p><p class="nums muted"></p>';
            card.querySelector("h2").textContent="Site "+s.site;
            const legend=card.querySelector(".legend");
            for(const [,c,label] of series){const sp=el("span",{},"■ "+label);sp.style.color=c;legend.appendChild(sp)}
            card.querySelector("select").addEventListener("change",async e=>{await api("PUT","/api/sites/"+encodeURIComponent(s.site)+"/mode",{mode:e.target.value})});
            document.getElementById("sites").appendChild(card);
          }
          const m=card.querySelector(".mode");m.textContent=s.mode.replace("_"," ");m.className="mode "+s.mode;
          const sel=card.querySelector("select");if(document.activeElement!==sel)sel.value=s.override||"auto";
          card.querySelector(".tier").textContent=s.mode==="normal"?"":"challenge: "+s.tier;
          card.querySelector(".nums").textContent=s.requests+" req/s · baseline "+s.baseline+" · "+s.distinct_sources+" sources · origin "+s.origin_latency_ms+" ms, limit "+s.origin_limit+", queue "+s.queue_peak;
          const h=history[s.site]||(history[s.site]=[]);h.push(s);if(h.length>N)h.shift();
          draw(card.querySelector("canvas"),h);
        }
        function draw(cv,h){
          const ctx=cv.getContext("2d"),W=cv.width,H=cv.height;ctx.clearRect(0,0,W,H);
          let max=1;for(const p of h)for(const [k] of series)max=Math.max(max,p[k]);
          ctx.strokeStyle="#d9dde3";ctx.beginPath();ctx.moveTo(0,H-1);ctx.lineTo(W,H-1);ctx.stroke();
          ctx.fillStyle="#5b6470";ctx.font="12px sans-serif";ctx.fillText(max+"/s",4,12);
          for(const [k,c] of series){ctx.strokeStyle=c;ctx.lineWidth=2;ctx.beginPath();
            h.forEach((p,i)=>{const x=W*(i+N-h.length)/(N-1),y=H-2-(H-16)*p[k]/max;i?ctx.lineTo(x,y):ctx.moveTo(x,y)});ctx.stroke();
            const last=h[h.length-1],lx=W*(N-1)/(N-1)-3,ly=H-2-(H-16)*last[k]/max;ctx.fillStyle=c;ctx.fillRect(lx-2,ly-2,5,5)}
        }
        function fillTop(frame){
          const t=document.getElementById("topSources");t.replaceChildren();
          t.appendChild(el("tr")).append(el("th",{},"site"),el("th",{},"source"),el("th",{},"req/s"),el("th",{},""));
          for(const s of frame.top)for(const e of s.sources){
            const tr=el("tr");const b=el("button",{class:"ban",type:"button"},"Ban 1 h");
            b.addEventListener("click",async()=>{await api("POST","/api/bans",{address:e.key,ttl_seconds:3600,reason:"dashboard"});b.textContent="banned";b.disabled=true});
            tr.append(el("td",{},s.site),el("td",{},e.key),el("td",{class:"n"},e.count),el("td")) ;tr.lastChild.appendChild(b);t.appendChild(tr)}
          const o=document.getElementById("topOther");o.replaceChildren();
          o.appendChild(el("tr")).append(el("th",{},"site"),el("th",{},"what"),el("th",{},"key"),el("th",{},"req/s"));
          const row=(site,kind,e,cls)=>o.appendChild(el("tr")).append(el("td",{},site),el("td",{},kind),el("td",cls?{class:cls}:{},e.key),el("td",{class:"n"},e.count));
          for(const s of frame.top){for(const e of s.subnets.slice(0,5))row(s.site,"subnet",e);
            for(const e of s.paths.slice(0,5))row(s.site,"path",e);
            for(const e of (s.fingerprints||[]).slice(0,3))row(s.site,"TLS fingerprint",e,"mono");
            for(const e of (s.countries||[]).slice(0,3))row(s.site,"country",e);
            for(const e of (s.networks||[]).slice(0,3))row(s.site,"network",e)}
        }
        function fillIncidents(frame){
          const t=document.getElementById("incidents");t.replaceChildren();
          t.appendChild(el("tr")).append(el("th",{},"#"),el("th",{},"site"),el("th",{},"start"),el("th",{},"length"),el("th",{},"peak"),el("th",{},"summary"),el("th",{},"NIS2 report"));
          for(const i of frame.incidents){
            const start=new Date(i.start*1000),len=((i.end||frame.time)-i.start);
            t.appendChild(el("tr")).append(el("td",{},i.id),el("td",{},i.site),el("td",{},start.toLocaleString()),el("td",{},len+" s"+(i.end?"":" (open)")),
              el("td",{},i.peakMode.replace("_"," ")+", "+i.peakRequestsPerSecond+" req/s"),
              el("td",{},i.requests+" requests, "+i.toOrigin+" to origin, "+i.challenged+" challenged, "+i.limited+" limited"+(i.topSources.length?"; top "+i.topSources[0].key:"")),
              reportLinks(i.id))}
        }
        // Download links for every stage and format of an incident's NIS2 report (plain GETs: the
        // cookie authorises them).
        function reportLinks(id){
          const td=el("td",{class:"reports"});
          for(const [stage,label] of [["early-warning","24 h"],["notification","72 h"],["final","final"]]){
            const p=el("div",{},label+": ");
            for(const f of ["html","json","stix","misp"]){
              const a=el("a",{href:"/api/incidents/"+id+"/report?format="+f+"&stage="+stage,class:"report",...(f==="html"?{target:"_blank",rel:"noopener"}:{download:""})},f.toUpperCase());
              p.append(a," ")}
            td.appendChild(p)}
          return td
        }
        function connect(){
          const es=new EventSource("/api/stream");
          es.onopen=()=>{document.getElementById("conn").textContent="live"};
          es.onmessage=ev=>{const f=JSON.parse(ev.data);document.getElementById("login").classList.remove("show");
            for(const s of f.sites)siteCard(s);fillTop(f);fillIncidents(f);document.getElementById("bans").textContent=f.bans+" bans in force";
            const st=document.getElementById("state");st.hidden=!f.state||f.state.writable;
            if(f.state&&!f.state.writable)st.textContent="State not saved: "+f.state.pendingWrites+" changes wait for the disk ("+(f.state.lastError||"write failed")+"); the gateway keeps serving";
            document.getElementById("conn").textContent="live · "+new Date(f.time*1000).toLocaleTimeString()};
          es.onerror=async()=>{document.getElementById("conn").textContent="reconnecting…";
            // The browser reconnects by itself (the admin listener restarting is fine); only a
            // token that stopped working ends the stream.
            try{await api("GET","/api/health")}catch(e){if(e.message==="unauthorized")es.close()}};
        }
        // The fleet panel (docs/fleet.md): this node's link to the shared database and every node's
        // last heartbeat, every 2 s; hidden on a node outside any fleet.
        async function fleet(){
          try{
            const f=await (await api("GET","/api/fleet")).json();
            if(!f.enabled)return;
            document.getElementById("fleet").hidden=false;
            const st=document.getElementById("fleetState");
            st.className=f.connected?"":"bad";
            st.textContent=(f.connected?"connected":"DEGRADED: database unreachable ("+(f.last_error||"")+"); serving on the last shared state")+
              " · node "+f.node+" · sync lag "+f.sync_lag_seconds.toFixed(1)+" s · outbox "+f.outbox+(f.outbox_dropped?" ("+f.outbox_dropped+" dropped)":"");
            const t=document.getElementById("fleetNodes");t.replaceChildren();
            t.appendChild(el("tr")).append(el("th",{},"node"),el("th",{},"address"),el("th",{},"last heartbeat"),el("th",{},"lag (events)"),el("th",{},"outbox"),el("th",{},"req/s"),el("th",{},"per site: req/s, to origin, challenged, limited; mode its detection raised"));
            const now=Date.now()/1000;
            for(const n of f.nodes)t.appendChild(el("tr")).append(el("td",{},n.name),el("td",{},n.address),el("td",{class:"n"},Math.max(0,Math.round(now-n.heartbeat))+" s ago"),
              el("td",{class:"n"},n.lag_events),el("td",{class:"n"},n.outbox),el("td",{class:"n"},Math.round(n.requests_per_second)),
              el("td",{},(n.sites||[]).map(s=>s.site+" "+s.requests+"/s, "+s.to_origin+", "+s.challenged+", "+s.limited+(s.raised_mode?" · raised "+s.raised_mode+" ("+s.raised_tier+")":"")).join("; ")||"–"));
          }catch(e){}
          setTimeout(fleet,2000);
        }
        api("GET","/api/health").then(()=>{connect();fleet()}).catch(()=>{});
        </script>
        </body></html>
        """#
}
