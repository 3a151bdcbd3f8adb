//! jarvis-network: bridged container networking (being written).
