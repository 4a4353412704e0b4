//! Logging set-up shared by the three binaries: a level from `-v`/`--log-level`, lines to stderr.

use log::LevelFilter;

/// Send log lines at `level` and above to stderr, with a timestamp and the module that wrote them.
pub fn init(level: LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Error)
        .set_thread_level(LevelFilter::Off)
        .build();
    // Colour only on a terminal: log files and test captures get plain text.
    let color = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        simplelog::ColorChoice::Auto
    } else {
        simplelog::ColorChoice::Never
    };
    // Ignoring the error is right: it only says a logger is already installed (tests).
    let _ = simplelog::TermLogger::init(level, config, simplelog::TerminalMode::Stderr, color);
}
