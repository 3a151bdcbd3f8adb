# Evaluates a NixOS module the way the module system would for what the
# tests need, against tests/nix/stub.nix: the user's settings are checked
# against the declared options (an unknown option or a value of the wrong
# type is an error, as in NixOS), defaults fill in the rest, submodules are
# evaluated the same way, and mkIf is resolved.
#
#   import ./eval.nix { module = ../../nix/module.nix; settings = { services.jarvis = { ... }; }; }
#
# gives { options = the resolved option values; config = what the module
# sets, mkIf resolved }.
{ module, settings }:
let
  inherit (builtins)
    attrNames
    elem
    filter
    head
    isAttrs
    mapAttrs
    ;
  stub = import ./stub.nix;

  isOption = v: isAttrs v && (v._type or null) == "option";

  wrong = where: type: v: throw "${where}: ${builtins.toJSON v} is not a value of type ${type.name}";

  # Containers are taken apart first, so an error names the innermost
  # value that is wrong.
  coerce =
    where: type: v:
    if type.name == "nullOr" then
      (if v == null then null else coerce where type.elem v)
    else if type.name == "either" then
      (
        if type.left.check v then
          coerce where type.left v
        else if type.right.check v then
          coerce where type.right v
        else
          wrong where type v
      )
    else if !(type.check v) && !(elem type.name containers && (type.shape v)) then
      wrong where type v
    else if type.name == "submodule" then
      fill where type.module.options v
    else if type.name == "attrsOf" then
      mapAttrs (n: x: coerce "${where}.${n}" type.elem x) v
    else if type.name == "listOf" then
      map (coerce "${where}[]" type.elem) v
    else
      v;
  containers = [
    "attrsOf"
    "listOf"
  ];

  fill =
    where: options: given:
    let
      unknown = filter (n: !(options ? ${n})) (attrNames given);
    in
    if unknown != [ ] then
      throw "${if where == "" then "" else "${where}."}${head unknown}: no such option"
    else
      mapAttrs (
        n: o:
        let
          at = if where == "" then n else "${where}.${n}";
        in
        if isOption o then
          (
            if given ? ${n} then
              coerce at o.type given.${n}
            else if o ? default then
              coerce at o.type o.default
            else
              throw "${at}: used but not set"
          )
        else
          fill at o (given.${n} or { })
      ) options;

  resolveIf =
    v:
    if !(isAttrs v) || v ? outPath then
      v
    else if (v._type or null) == "if" then
      (if v.condition then resolveIf v.content else { })
    else
      mapAttrs (_: resolveIf) v;

  evaluated = import module {
    config = options;
    inherit (stub) lib pkgs;
  };
  options = fill "" evaluated.options settings;
in
{
  inherit options;
  config = resolveIf evaluated.config;
}
