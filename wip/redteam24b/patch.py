"""Writes work/draft_patched.json: the draft with the narrow fixes proposed in the report (F1..F9)."""
import json, copy
d = json.load(open("/tmp/rt25/draft.json"))
L = d["lexicons"]; R = {r["id"]: r for r in d["rules"]}
OLD_PLURAL = "re:(?<![a-z])(?:of|my|our|his|her|ur|your) (?:[1-9]|1[0-7]) ?-? ?(?:yr olds|yrs olds|year olds)(?![a-z])"
assert OLD_PLURAL in L["minor_age"]
# F2: the plural / possessive age only at the end of a clause or before a picture noun
L["minor_age"][L["minor_age"].index(OLD_PLURAL)] = (
    "re:(?<![a-z])(?:of|my|our|his|her|ur|your) (?:[1-9]|1[0-7]) ?-? ?(?:yr olds|yrs olds|year olds)(?![a-z])"
    "(?=\\W*(?![^\\n])|\\s?[,.;!?)]| (?:pics|pictures|photos|vids|videos|fotos|nudes|content|stuff)(?![a-z]))")
# F1: cse.trade_minor_pics: the minor is what the pictures are of (sequence), not any age in the listing
t = R["cse.trade_minor_pics"]
L["v24_trade_pics_of"] = [t["all"][1][0]]
L["v24_trade_minor"] = [x for x in t["all"][2] if x != "@minor_age"] + L["minor_age"] + ["re:(?<![a-z0-9])(?:[1-9]|1[0-7]) ?-? ?(?:yr olds|yrs olds|year olds)(?![a-z])(?=\\W*(?![^\\n])|\\s?[,.;!?)]| (?:pics|pictures|photos|vids|videos|fotos|nudes|content|stuff)(?![a-z]))"]
L["v24_pic_noun"] = ["pics", "pictures", "photos", "vids", "videos", "fotos", "bilder", "content", "stuff"]
t["all"][1] = ["@v24_trade_pics_of ~2 @v24_trade_minor", "@v24_trade_minor ~0 @v24_pic_noun", t["all"][1][1]]
# F3: share/sharing only with the 'private kind' cues (a parent shares privately with grandparents)
t["all"][0] = [x for x in t["all"][0] if x not in ("share", "sharing")]
s = copy.deepcopy(t); s["id"] = "cse.share_minor_pics_private"
s["all"][0] = ["share", "sharing"]; s["all"][3] = ["got some too", "the private kind", "private ones", "the private"]
d["rules"].insert(d["rules"].index(t) + 1, s)
# F4: the 1.24.0 secrecy phrases out of cse.grooming_secrecy (group 2 reads photo/pic/chat/message as contact) into a
# rule that needs a request made to the child
g = R["cse.grooming_secrecy"]
i0 = g["all"][1].index("re:(?<![a-z])(?:her|his|their|the|ur|your) (?:parents|mom|mum|dad|mother|father) (?:never|can ?t|cant|cannot|mustn ?t|won ?t|wont|don ?t|dont|doesn ?t|doesnt) (?:finds? out|see|sees|notice|notices)(?![a-z])")
new = g["all"][1][i0:]; g["all"][1] = g["all"][1][:i0]
d["rules"].insert(d["rules"].index(g) + 1, {
    "id": "cse.grooming_secrecy_request", "category": "child_sexual_exploitation", "weight": 0.9, "scope": "turn",
    "view": "folded", "window": 24, "note": "1.24.0 secrecy wording beside a request made to the child",
    "all": [["@minor", "@minor_age"], new,
            ["send me", "send pics", "send a pic", "send a selfie", "send a photo", "to send", "sends me", "video call me",
             "call me", "camera on", "turn on her camera", "turn on his camera", "get her on", "get him on", "snap me",
             "ask her for", "ask him for", "get her pics", "get her to", "get him to", "convince", "persuad*",
             "come over", "meet me", "meet up", "feel special", "me mande", "mandar foto*", "m envoie", "m envoyer",
             "mir schicken", "schick mir", "mir ein foto", "private call", "private pics", "her pics", "his pics", "tell her to", "tell him to", "to delete", "delete our", "for a pic", "for pics", "for a selfie", "fotos von", "bilder von", "photos d", "fotos de", "fotos da", "fotos do"]]})
# F5: top-free / tan-line free: a terse fragment's tail after a comma, or before edit/version/pic/photo
E = L["naked_euphemism"]
i = E.index("re:(?<![a-z])(?:top ?free|tan ?lines? ?free)(?=\\W*(?![^\\n])| (?:edit|version|look|pic|photo|style)(?![a-z]))")
E[i] = "re:(?:(?<=, )|(?<=,))(?:top ?free|tan ?lines? ?free)(?=\\W*(?![^\\n]))|(?<![a-z])(?:top ?free|tan ?lines? ?free) (?:edit|version|pic|photo)(?![a-z])"
i = E.index("re:(?<![a-z])all ?over tan (?:edit|version|look)(?![a-z])")
E[i] = "re:(?<![a-z])all ?over tan (?:edit|version)(?![a-z])"
# F6..F8: masks
M = d["masks"]
GARM = ("cloth\\w*|dress\\w*|bras?|tops?|shirt|skirt|pants|panties|underwear|lingerie|bikini|swimsuit|towel|wearing|"
        "outfit|robe|maillot|vetements|ropa|vestido|roupas?|biquini|kleid\\w*|oberteil|bh|haut")
i = [k for k, m in enumerate(M) if m.startswith("re:(?<![a-z])(?:remove|delete|take down|takedown|supprimer")][0]
base = M.pop(i)
verbs = "remove|delete|take down|takedown|supprimer|supprimez|retirer|retirez|eliminar|eliminen|borrar|borren|entfernen|loschen|remover|removam|apagar|apaguem"
assert verbs in base
for vs in ("remove|delete|take down|takedown|supprimer|supprimez|retirer|retirez", "eliminar|eliminen|borrar|borren|entfernen|loschen|remover|removam|apagar|apaguem"):
    vs2 = vs if vs.startswith("remove") else "eliminar|eliminen|borrar|borren|entfernen|loschen|(?<!como )(?<!pra )(?:remover|removam|apagar|apaguem)"
    lb = "(?<!faire )(?<!comment )" if vs.startswith("remove") else ""
    M.insert(i, base.replace(verbs, vs2).replace("re:(?<![a-z])", "re:(?<![a-z])" + lb, 1)
             + "(?![^\\n]{0,80}(?<![a-z])(?:" + GARM + ")(?![a-z]))")
M.remove("re:(?<![a-z])merci de les (?:supprimer|retirer)(?=\\W{0,3} ?(?:les |des )?(?:liens?|urls?|publications?)(?![a-z]))")
M.remove("re:(?<![a-z])bare mannequins?(?![a-z])")
M.append("re:(?<![a-z])(?:the|our|a|these|those|two|three|four|[0-9]+) bare mannequins?(?![a-z])")
i = [k for k, m in enumerate(M) if m.startswith("re:(?<![a-z])(?:take|get|remove|strip|pull) (?:the |all the")][0]
M[i] = ("re:^\\W{0,3}(?:please |pls |now )?(?:take|get|remove|strip|pull) (?:the |all the |these |those )?(?:outfits?|clothes|clothing|garments?|dresses|samples?) off (?:the |our |these |all the )?(?:mannequins?|dummies|dress forms?)(?![a-z])"
        "(?![^\\n]{0,200}(?<![a-z])(?:her|him|s?he|s?hes|girl|woman|man|my|classmate|coworker|colleague|friend|ex|neighbou?r|person|people|photo|pic|selfie|attached|jpg|is|being)(?![a-z]))")
# F9: the takedown names count as help-seeking only beside leak / publication wording
sc = d["support_context"]["terms"]
for term, pat in [("demande de retrait", "re:(?<![a-z])demande de (?:retrait|suppression)(?=[^\\n]{0,200}(?:publie|diffuse|sans (?:son|mon|leur) consentement|en ligne|liens?|urls?))"),
                  ("solicitud de retirada", "re:(?<![a-z])solicitud de (?:retirada|eliminacion)(?=[^\\n]{0,200}(?:publicad|difundid|sin (?:su|mi) consentimiento|enlaces?|urls?))"),
                  ("pedido de remocao", "re:(?<![a-z])pedido de remocao(?=[^\\n]{0,200}(?:publicad|divulgad|vazad|sem (?:o |seu |meu )?consentimento|links?|urls?))"),
                  ("loschantrag", "re:(?<![a-z])losch(?:ungs)?antrag(?=[^\\n]{0,200}(?:veroffentlicht|gepostet|verbreitet|ohne (?:ihre|meine|seine) zustimmung|links?|urls?))")]:
    sc[sc.index(term)] = pat
for term in ("demande de suppression", "solicitud de eliminacion", "loschungsantrag"):
    sc.remove(term)
json.dump(d, open("/tmp/rt25/work/draft_patched.json", "w"))
print("ok")
