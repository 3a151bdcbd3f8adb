# nix/module.nix evaluated against the stub (eval.nix) for the end-to-end
# test (tests/it/nix.rs): units in Nix that use every table and key kind of
# the unit format, the unit files the module writes for them, and jarvisd's
# service with and without the git trigger. `nix-instantiate --eval --strict
# --json tests/nix/cases.nix` prints it all.
let
  evalWith = settings: import ./eval.nix {
    module = ../../nix/module.nix;
    inherit settings;
  };

  # A value that needs TOML's escapes: quotes, a backslash, a newline, a tab,
  # DEL, and characters outside ASCII.
  tricky = "say \"hi\"\\ \n\tdel:${builtins.fromJSON ''"\u007f"''} é ☃";

  units = {
    llm = {
      description = "a model server on the GPU";
      native = {
        command = [
          "/usr/local/bin/ollama"
          "serve"
        ];
        user = "nobody";
        working_dir = "/var/lib/ollama";
      };
      env = {
        OLLAMA_HOST = "127.0.0.1:11434";
        TRICKY = tricky;
      };
      gpu = {
        want = "auto";
        count = 1;
        min_vram = "6G";
      };
      resources = {
        memory_max = "8G";
        cpus = 2.5;
        cpu_weight = 200;
        pids_max = 512;
        cpuset = "0-3";
      };
      restart = {
        policy = "always";
        delay = "1s";
        max_delay = "1m";
        burst = 5;
        interval = "10m";
      };
      health = {
        http = "http://127.0.0.1:11434/api/version";
        interval = "10s";
        timeout = "3s";
        retries = 3;
        start_period = "30s";
        start_interval = "2s";
        on_unhealthy = "restart";
      };
      stop = {
        signal = "SIGTERM";
        timeout = "30s";
      };
      security = {
        capabilities = [ ];
        no_new_privileges = true;
      };
      logs = {
        max_size = "20M";
        max_files = 5;
      };
      bench = {
        api = "ollama";
        url = "http://127.0.0.1:11434";
        model = "smollm2";
        prompt = "Why is the sky blue?";
        max_tokens = 32;
        requests = 4;
        rounds = 2;
        max_slowdown = 0.1;
      };
    };

    hass = {
      description = "a container with a dongle";
      depends_on = {
        mqtt = "healthy";
        llm = "started";
      };
      container = {
        image = "ghcr.io/home-assistant/home-assistant:2024.12";
        entrypoint = [ "/init" ];
        command = [ "serve" ];
        user = "1000:1000";
        working_dir = "/config";
        network = "bridge";
        networks = [
          "default"
          "iot"
        ];
        ports = [ "127.0.0.1:8123:8123" ];
        hostname = "ha";
        aliases = [ "homeassistant" ];
        extra_hosts = [ "host.docker.internal:host-gateway" ];
        dns = [ "9.9.9.9" ];
        volumes = [
          "/srv/ha:/config"
          "ha-cache:/cache"
        ];
        read_only = false;
        tmpfs = [ "/tmp:size=64m,mode=1777" ];
        shm_size = "64M";
        group_add = [ "dialout" ];
        privileged = false;
        device_cgroup_rules = [ "c 188:* rwm" ];
        cap_drop = [ "ALL" ];
        cap_add = [ "NET_RAW" ];
        sysctls."net.ipv4.ip_unprivileged_port_start" = "0";
        ulimits = {
          nofile = [
            65536
            65536
          ];
          nproc = 512;
        };
        init = true;
      };
      device = [
        {
          usb = "10c4:ea60";
          serial = "0001";
          as = "/dev/zigbee";
          optional = true;
        }
      ];
      health.tcp = "127.0.0.1:8123";
    };

    mqtt = {
      native = {
        command = [
          "/usr/sbin/mosquitto"
          "-c"
          "/etc/mosquitto/mosquitto.conf"
        ];
        user = "nobody";
        group = "nogroup";
        supplementary_groups = [ "dialout" ];
        working_dir = "/";
      };
      env_file = [ "/run/keys/mqtt.env" ];
      secret = [
        {
          source = "/run/keys/mqtt_password";
          target = "mqtt_password";
          mode = "0440";
        }
      ];
      device = [ { path = "/dev/net/tun"; } ];
      health = {
        exec = [
          "test"
          "-e"
          "/tmp"
        ];
        on_unhealthy = "ignore";
      };
    };

    dual = {
      depends_on = [ "mqtt" ];
      run = "auto";
      native.command = [
        "/bin/sleep"
        "1000"
      ];
      container.image = "docker.io/library/busybox:1.36";
    };
  };

  plain = evalWith {
    services.jarvis = {
      enable = true;
      inherit units;
      socketGroup = "wheel";
      extraArgs = [
        "--auth-file"
        "/etc/jarvis/my auth$HOME%h.json"
      ];
    };
  };

  git = evalWith {
    services.jarvis = {
      enable = true;
      git = {
        url = "https://git.example.org/me/homelab.git";
        branch = "prod";
        interval = "1m";
        path = "units";
        webhook = {
          listen = "0.0.0.0:8787";
          secretFile = "/run/keys/jarvis-webhook";
        };
      };
      ageIdentity = "/etc/ssh/ssh_host_ed25519_key";
      extraArgs = [
        "--subnet-pool"
        "10.90.0.0/16"
      ];
    };
  };

  gitDefaults = evalWith {
    services.jarvis = {
      enable = true;
      git.url = "file:///srv/homelab.git";
    };
  };

  disabled = evalWith { services.jarvis.units = units; };

  service = e: {
    inherit (e.config.systemd.services.jarvisd) serviceConfig wantedBy reloadTriggers;
    assertions = map (a: a.assertion) e.config.assertions;
    checks = map (c: c.script) e.config.system.checks;
    socketEnv = e.config.environment.variables.JARVIS_SOCKET;
  };
in
{
  inherit tricky;
  # NAME -> the text of /etc/jarvis/units/NAME.toml.
  units = builtins.listToAttrs (
    map (path: {
      name = builtins.replaceStrings [ "jarvis/units/" ".toml" ] [ "" "" ] path;
      value = plain.config.environment.etc.${path}.source.text;
    }) (builtins.attrNames plain.config.environment.etc)
  );
  plain = service plain;
  git = service git;
  gitDefaults = service gitDefaults;
  disabled = disabled.config;
}
