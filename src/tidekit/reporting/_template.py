"""The report's HTML template (inline CSS, figures as data: URIs: one file that works offline).

Kept as a string in a module so it ships with the package without package-data rules.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
 body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1080px;margin:0 auto;padding:1.2em 1.6em;color:#1d2430;line-height:1.45}
 h1{font-size:1.7em;margin-bottom:.1em} h2{border-bottom:2px solid #e3e7ee;padding-bottom:.2em;margin-top:1.8em}
 h3{margin-bottom:.3em} .sub{color:#5a6578;margin-top:0}
 table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1em;display:block;overflow-x:auto}
 th,td{border-bottom:1px solid #e3e7ee;padding:.25em .6em;text-align:left;white-space:nowrap} th{background:#f4f6fa}
 figure{margin:1em 0} figure img{max-width:100%;border:1px solid #e3e7ee} figcaption{font-size:.85em;color:#5a6578}
 .banner{padding:.7em 1em;border-radius:6px;margin:.8em 0;font-weight:600}
 .sim{background:#fff3cd;border:1px solid #e0b100}
 .warn{background:#fdecea;border:1px solid #d9534f;font-weight:400}
 .ok{background:#eaf6ec;border:1px solid #5cb85c;font-weight:400}
 .note{font-size:.85em;color:#5a6578} .missing{color:#8a5a00} code{background:#f4f6fa;padding:0 .25em}
 nav a{margin-right:.9em;font-size:.9em} .kpi{display:inline-block;margin-right:1.6em} .kpi b{font-size:1.3em;display:block}
</style></head><body>
<h1>{{ title }}</h1>
<p class="sub">tidekit report for <code>{{ run }}</code>, generated {{ generated }}. Research software, not therapy: these
models are not clinicians.</p>
{% if simulated %}<div class="banner sim" id="simulated">SIMULATED RATINGS: {{ simulated }} of the human ratings in this
report are simulated, not collected from people. Do not read them as findings about people.</div>{% endif %}
<nav>{% for s in sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
{% if missing %}<div class="banner warn"><b>Not in this run</b> (the report shows what exists):<ul>
{% for m in missing %}<li class="missing">{{ m }}</li>{% endfor %}</ul></div>{% endif %}
{% for s in sections %}
<h2 id="{{ s.id }}">{{ s.title }}</h2>
{% if s.intro %}<p>{{ s.intro }}</p>{% endif %}
{% for k in s.kpis %}<span class="kpi"><b>{{ k[1] }}</b>{{ k[0] }}</span>{% endfor %}
{% for b in s.blocks %}
 {% if b.kind == "figure" %}<figure><img alt="{{ b.title }}" data-figure="{{ b.key }}" src="data:image/png;base64,{{ b.b64 }}">
 <figcaption><b>{{ b.title }}.</b> {{ b.caption }}</figcaption></figure>
 {% elif b.kind == "table" %}<h3>{{ b.title }}</h3>{{ b.html | safe }}{% if b.note %}<p class="note">{{ b.note }}</p>{% endif %}
 {% elif b.kind == "list" %}<ul>{% for x in b["items"] %}<li>{{ x }}</li>{% endfor %}</ul>
 {% elif b.kind == "text" %}<p class="{{ b.cls or '' }}">{{ b.text }}</p>
 {% elif b.kind == "method" %}<h3>{{ b.m.stage }}</h3><p>{{ b.m.text }}{% if b.m.error %} <b>Error:</b> {{ b.m.error }}{% endif %}</p>
  {% if b.m.models %}<p class="note">Models: {{ b.m.models | join("; ") }}</p>{% endif %}
  {% if b.m.settings %}<p class="note">Settings: {% for k, v in b.m.settings.items() %}<code>{{ k }}={{ v }}</code> {% endfor %}</p>{% endif %}
  {% if b.m.counts %}<p class="note">Counts: {% for k, v in b.m.counts.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
  <p class="note">Packages: {{ b.m.packages }}</p>
 {% endif %}
{% endfor %}
{% endfor %}
</body></html>
"""
