//! jarvisd's name server for bridge networks.
