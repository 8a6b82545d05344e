using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Rtt.Silo.Hosting;

/// <summary>
/// The console log of <c>rtt up</c>: one line per entry on stderr (stdout carries only the command's own output). An
/// exception is summarised on its entry's line (type and first line of its message); its stack trace is printed only
/// with <c>RTT_DEBUG=1</c>. Until the silo has started, entries are held back: a start that fails (most often a user's
/// mistake, which the CLI reports as one RTT error and its hint) writes them, stack traces included, to
/// <c>.rtt/state/silo-start.log</c> instead of the terminal, and so does the shutdown that follows; a start that
/// succeeds prints them as they would have been printed.
/// </summary>
public sealed class RttConsoleLog : ILoggerProvider
{
    /// <summary>The file a failed start's log goes to, in the workspace's state folder.</summary>
    public const string StartLogName = "silo-start.log";

    private const int MaxHeld = 2000;
    private readonly Lock _gate = new();
    private readonly bool _debug = Environment.GetEnvironmentVariable("RTT_DEBUG") is "1";
    private List<Entry>? _held = [];
    private string? _failedLog;

    private sealed record Entry(DateTimeOffset Time, LogLevel Level, string Category, int EventId, string Message, Exception? Exception);

    /// <summary>Where the log of a failed start was written, once <see cref="Failed"/> was called.</summary>
    public string? FailedLogPath => _failedLog;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <summary>The silo is up: what was held back is printed, and from now on every entry as it comes.</summary>
    public void Started()
    {
        lock (_gate)
        {
            if (_held is null)
            {
                return;
            }

            foreach (var entry in _held)
            {
                Console.Error.Write(Format(entry, _debug));
            }

            _held = null;
        }
    }

    /// <summary>The start failed: what was held back, and everything after it, goes to <paramref name="path"/>.</summary>
    public void Failed(string path)
    {
        lock (_gate)
        {
            if (_held is null)
            {
                return;
            }

            _failedLog = path;
            var text = new StringBuilder();
            foreach (var entry in _held)
            {
                text.Append(Format(entry, full: true));
            }

            _held = null;
            try
            {
                File.WriteAllText(path, text.ToString()); // the last failed start's log: a new failure replaces it
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _failedLog = null; // cannot keep it: later entries go to the terminal as usual
            }
        }
    }

    public void Dispose()
    {
    }

    private void Write(Entry entry)
    {
        lock (_gate)
        {
            if (_held is not null)
            {
                if (_held.Count < MaxHeld)
                {
                    _held.Add(entry);
                }
            }
            else if (_failedLog is not null)
            {
                Append(Format(entry, full: true));
            }
            else
            {
                Console.Error.Write(Format(entry, _debug));
            }
        }
    }

    private void Append(string text)
    {
        try
        {
            File.AppendAllText(_failedLog!, text);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The state folder went away or is read-only: the log is lost, the RTT error on the terminal is not.
        }
    }

    /// <summary>One entry as its line(s): <c>HH:mm:ss level: category[event] message</c>, the exception after it.</summary>
    internal static string Format(DateTimeOffset time, LogLevel level, string category, int eventId, string message, Exception? exception, bool full) =>
        Format(new Entry(time, level, category, eventId, message, exception), full);

    private static string Format(Entry e, bool full)
    {
        var line = new StringBuilder()
            .Append(e.Time.ToString("HH:mm:ss", CultureInfo.InvariantCulture)).Append(' ')
            .Append(e.Level switch
            {
                LogLevel.Trace => "trce",
                LogLevel.Debug => "dbug",
                LogLevel.Information => "info",
                LogLevel.Warning => "warn",
                LogLevel.Error => "fail",
                _ => "crit",
            })
            .Append(": ").Append(e.Category).Append('[').Append(e.EventId.ToString(CultureInfo.InvariantCulture)).Append("] ")
            .Append(full ? e.Message : OneLine(e.Message));
        if (e.Exception is { } ex)
        {
            if (full)
            {
                line.Append('\n').Append(ex);
            }
            else
            {
                var inner = ex;
                while (inner.InnerException is not null && inner is AggregateException or System.Reflection.TargetInvocationException)
                {
                    inner = inner.InnerException;
                }

                line.Append(" (").Append(inner.GetType().Name).Append(": ").Append(OneLine(inner.Message)).Append(')');
            }
        }

        return line.Append('\n').ToString();
    }

    private static string OneLine(string text)
    {
        var cut = text.IndexOfAny(['\r', '\n']);
        return cut < 0 ? text : text[..cut];
    }

    private sealed class Logger(RttConsoleLog owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            owner.Write(new Entry(DateTimeOffset.Now, logLevel, category, eventId.Id, formatter(state, exception), exception));
        }
    }
}
