# A jarvis unit, given as Nix attributes in the unit file's own shape, written
# as the text of a unit file (TOML). Only builtins are used, so this works
# without nixpkgs and at evaluation time (no remarshal build step).
#
#   unitFile { native.command = [ "sleep" "1000" ]; resources.memory_max = "64M"; }
#
# Top-level attribute sets become tables (`[native]`), lists of attribute sets
# arrays of tables (`[[device]]`), attribute sets inside a table inline tables
# (`sysctls = { "net.ipv4.ip_forward" = "1" }`). Attributes whose value is
# null are left out, and so are empty top-level lists and attribute sets (an
# empty `env_file` or `[env]` says what leaving it out says). A derivation
# stands for its store path; a Nix path for its location as a string (not
# copied to the store: a secret must never land there).
let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    filter
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isPath
    isString
    match
    replaceStrings
    toJSON
    typeOf
    ;

  # JSON's string escapes are TOML's, except that TOML wants DEL escaped too.
  del = builtins.fromJSON ''"\u007f"'';
  string = s: replaceStrings [ del ] [ "\\u007f" ] (toJSON s);

  key = k: if match "[A-Za-z0-9_-]+" k != null then k else string k;

  isDerivation = v: isAttrs v && v ? outPath;
  isTable = v: isAttrs v && !(isDerivation v);
  isTableList = v: isList v && v != [ ] && all isTable v;

  present = attrs: filter (k: attrs.${k} != null) (attrNames attrs);

  value =
    where: v:
    if isString v then
      string v
    else if isPath v then
      string (toString v)
    else if isBool v || isInt v then
      toJSON v
    # toString keeps six decimals; toJSON would keep six significant digits.
    else if isFloat v then
      toString v
    else if isDerivation v then
      string "${v}"
    else if isList v then
      "[" + concatStringsSep ", " (map (value where) v) + "]"
    else if isAttrs v then
      "{ " + concatStringsSep ", " (map (k: pair "${where}.${k}" k v.${k}) (present v)) + " }"
    else
      throw "jarvis unit: ${where} is a ${typeOf v}, which a unit file cannot hold";

  pair = where: k: v: "${key k} = ${value where v}";

  lines = where: attrs: map (k: pair "${where}.${k}" k attrs.${k} + "\n") (present attrs);

  unitFile =
    unit:
    let
      keep = filter (
        k:
        let
          v = unit.${k};
        in
        v != null && v != [ ] && v != { }
      ) (attrNames unit);
      scalars = filter (k: !(isTable unit.${k}) && !(isTableList unit.${k})) keep;
      tables = filter (k: isTable unit.${k}) keep;
      tableLists = filter (k: isTableList unit.${k}) keep;
    in
    concatStringsSep "" (
      map (k: pair k k unit.${k} + "\n") scalars
      ++ map (k: "\n[${key k}]\n" + concatStringsSep "" (lines k unit.${k})) tables
      ++ builtins.concatMap (
        k: map (t: "\n[[${key k}]]\n" + concatStringsSep "" (lines k t)) unit.${k}
      ) tableLists
    );
in
{
  inherit unitFile;
}
