# A stand-in for the parts of nixpkgs that nix/module.nix and nix/package.nix
# use, so that both can be evaluated offline: lib's mkOption, mkEnableOption,
# mkIf and types (each type a name and a check), its source filters (which
# keep the filter, so a test can ask it), and pkgs' callPackage, writeText,
# runCommand, buildRustPackage (which gives back its arguments) and the
# libraries, as plain attribute sets that look like derivations (an outPath)
# and keep what they were given.
let
  inherit (builtins)
    all
    attrValues
    elem
    isAttrs
    isBool
    isInt
    isList
    isString
    ;

  store = name: "/nix/store/00000000000000000000000000000000-${name}";
  drv = name: extra: { type = "derivation"; inherit name; outPath = store name; } // extra;

  type = name: check: extra: { inherit name check; } // extra;
in
{
  lib = rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };

    optionals = condition: list: if condition then list else [ ];
    removePrefix =
      prefix: s:
      let
        n = builtins.stringLength prefix;
      in
      if builtins.substring 0 n s == prefix then
        builtins.substring n (builtins.stringLength s - n) s
      else
        s;
    cleanSource = src: src;
    cleanSourceWith = { src, filter }: { inherit src filter; };
    licenses.asl20 = "asl20";
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];

    types = {
      bool = type "bool" isBool { };
      str = type "str" isString { };
      int = type "int" isInt { };
      anything = type "anything" (_: true) { };
      package = type "package" (v: isAttrs v && v ? outPath) { };
      enum = values: type "enum" (v: elem v values) { inherit values; };
      listOf = elem: type "listOf" (v: isList v && all elem.check v) {
        inherit elem;
        shape = isList;
      };
      attrsOf = elem: type "attrsOf" (v: isAttrs v && all elem.check (attrValues v)) {
        inherit elem;
        shape = isAttrs;
      };
      nullOr = elem: type "nullOr" (v: v == null || elem.check v) { inherit elem; };
      either = left: right: type "either" (v: left.check v || right.check v) { inherit left right; };
      submodule = module: type "submodule" isAttrs { inherit module; };
    };
  };

  pkgs = {
    callPackage = _: _: drv "jarvis" { };
    writeText = name: text: drv name { inherit text; };
    runCommand = name: env: script: drv name { inherit env script; };
    nftables = drv "nftables" { };
    rustPlatform.buildRustPackage = args: args;
    pkg-config = drv "pkg-config" { };
    libseccomp = drv "libseccomp" { };
    elfutils = drv "elfutils" { };
    zlib = drv "zlib" { };
    openssl = drv "openssl" { };
  };
}
