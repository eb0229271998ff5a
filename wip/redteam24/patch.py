"""A patched copy of the draft with the narrow fixes suggested in the report (for checking them only)."""
import json, copy
d = json.load(open("/tmp/rt24/draft.json"))
L = d["lexicons"]; R = {r["id"]: r for r in d["rules"]}
# P1 trade: pictures must be OF someone; drop the commerce cues
R["cse.trade_minor_pics"]["all"][1] = [
    "re:(?<![a-z])(?:pics|pictures|photos|vids|videos|fotos|bilder) of(?![a-z])",
    "re:(?<![a-z])(?:cousins|nieces|sisters|daughters|stepdaughters|nephews|sons|neighbours|neighbors|students|friends|girls|boys|kids|ur|your) (?:pics|pictures|photos|vids|videos)(?![a-z])"]
R["cse.trade_minor_pics"]["all"][3] = ["got some too", "dm me", "the private kind", "private ones", "the private"]
# P2 private session: the reveal cue is what makes it abuse
R["cse.minor_private_session"]["all"][1] = [
    "re:(?<![a-z])(?:swimwear|swimsuits?|bikinis?|underwear|lingerie) and less(?![a-z])"]
# P3 loli: "loli irl"/"real loli" adjacent, plus a picture source
R["cse.loli_real"]["all"] = [["re:(?<![a-z])(?:lolis?|lolita) ?(?:irl|in real life)(?![a-z])", "re:(?<![a-z])real lolis?(?![a-z])", "lolicon"],
                             ["school photo", "school pic*", "class photo", "class pic*", "yearbook", "@photo_ref", "underage", "@minor_age"]]
# P4 remove clothing: "off" only; "need the X gone" without clothes/clothing and not "gone from/by..."; "no-X version|kind|edit"
L["off_strict"] = ["off"]
g = R["cse.minor_remove_clothing"]["all"][1]
g[g.index("@clothing ~0 @off_particle")] = "@clothing ~0 @off_strict"
i = [k for k, e in enumerate(g) if e.startswith("re:(?<![a-z])(?:need|want")][0]
g[i] = "re:(?<![a-z])(?:need|want|get|make|have) (?:the|her|his) (?:dress|shorts|shirt|top|uniform|swimsuit|bikini|skirt|pants|trunks) gone(?![a-z])(?! (?:from|by|before|off|out|asap|quickly|this|today|tonight|for|to))"
i = [k for k, e in enumerate(g) if e.startswith("re:(?<![a-z])no (?:uniform")][0]
g[i] = "re:(?<![a-z])no ?-?(?:uniform|clothes|clothing|swimsuit|shorts|dress|underwear|undies)\\W{0,2} (?:version|kind|edit)s?(?![a-z])(?! of (?:the|a|our|your|their) (?:class|school|team|group|year|yearbook) )"
# P5 grooming: the new secrecy words only where a child is asked to send pictures
new_words = ["without her mom knowing", "without her mum knowing", "without her dad knowing", "without his mom knowing",
             "without mom knowing", "wo her mom knowing", "w o her mom knowing", "wo her parents knowing",
             "w o her parents knowing", "keep it just us", "keep it just between us", "keep it between us", "just us two"]
L["grooming_secrecy"] = [w for w in L["grooming_secrecy"] if w not in new_words]
L["grooming_secrecy_ask"] = [w for w in new_words if w != "just us two"]
gi = R["cse.grooming_images"]["all"]
gi[1] = gi[1] + ["ask her for a pic", "ask him for a pic", "ask her for pics", "ask him for pics", "ask for a pic"]
gi[3] = gi[3] + ["@grooming_secrecy_ask"]
# P6 bare relations only where a depiction follows
bare = ["kollegin", "arbeitskollegin", "sister in law", "sis in law", "sister inlaw", "schwagerin", "boss lady"]
L["person_ref"] = [w for w in L["person_ref"] if w not in bare] + [
    "re:(?<![a-z])(?:arbeits)?kollegin (?:im|in|am|beim|auf)(?![a-z])",
    "re:(?<![a-z])(?:sister in ?law|sis in law|schwagerin|boss lady) (?:at|in|on|im|am|beim|by)(?![a-z])"]
# P7 euphemisms
ne = L["naked_euphemism"]
k = [i for i, e in enumerate(ne) if e.startswith("re:(?<![a-z])(?:euro|european")][0]
ne[k] = "re:(?<![a-z])(?:euro|european|ibiza|fkk|nude beach) (?:style|beach kind|kind|way)(?![a-z])[a-z ,]{0,20}(?:top and bottom|all of it|no top|nothing on|the whole way)(?= ?(?:[.,!?;)]|$| off| gone| too| both))"
k = [i for i, e in enumerate(ne) if e.startswith("re:(?<![a-z])no tan lines")][0]
ne[k] = "re:(?<![a-z])no tan lines?\\W{0,3} (?:ibiza|euro|nude|fkk) style(?![a-z])"
drop = ["adam and eve style", "adam eve style", "skip the fig leaf", "without the fig leaf", "no fig leaf",
        "nothing to leave a tan line", "boobs out", "tits out", "titties out"]
L["naked_euphemism"] = [w for w in ne if w not in drop] + [
    "re:(?<![a-z])(?<!blue )(?<!great )(?<!coal )(?<!marsh )(?<!crested )(?:boobs|boobies|tits|titties) out(?= ?(?:[.,!?;)]|$| version| edit| pic| photo))"]
# P8 "no top" turns: a garment from an earlier turn, not any "top"
gt = L["garment_turn"]
k = [i for i, e in enumerate(gt) if "no (?:top|tops|bottom" in e][0]
gt[k] = ("re:(?<![^\\n])[^\\w\\n]*(?:and now |now |and |then )?no (?:(?:bra|shirt|dress|skirt|pants|shorts|swimsuit|bikini|clothes|underwear)"
         "(?: either| too| at all| anymore)?|(?:top|tops|bottom|bottoms)(?: either| too| at all| anymore))[^\\w\\n]*(?![^\\n])")
# P9 recolour context: "make it navy"
for c in d["contexts"]:
    if c["id"] == "garment_recolour": c["all"][1] = c["all"][1] + ["make it"]
for r in d["rules"]:
    if r["id"] in R: r.update(R[r["id"]])
json.dump(d, open("/tmp/rt24/work/draft_patched.json", "w"), ensure_ascii=False)
print("ok")
