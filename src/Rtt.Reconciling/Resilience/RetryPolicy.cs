using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Rtt.Reconciling.Resilience;

/// <summary>How a retried call waits between tries.</summary>
public enum RetryBackoff
{
    /// <summary>The same wait every time.</summary>
    Constant,

    /// <summary><see cref="RetryOptions.Delay"/> × the retry's number (1, 2, 3, …), at most <see cref="RetryOptions.MaxDelay"/>.</summary>
    Linear,
}

/// <summary>One retried call's settings (a section of <see cref="RttRetryOptions"/>).</summary>
public sealed record RetryOptions
{
    /// <summary>Tries in all, the first included (1: no retry).</summary>
    public int Attempts { get; init; } = 20;

    public TimeSpan Delay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(1);

    public RetryBackoff Backoff { get; init; } = RetryBackoff.Linear;
}

/// <summary>
/// Every retry the silo does, in one place (configuration section <c>Retry</c>, docs/reconciler.md "Retries"):
/// the defaults are the settings the hand-written loops had.
/// </summary>
public sealed record RttRetryOptions
{
    /// <summary>The coordinator re-sends a decided commit to a participant that did not acknowledge it.</summary>
    public RetryOptions Commit { get; init; } = new() { Attempts = 20, Delay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromSeconds(1) };

    /// <summary>The reconciler's calls to the WAL grain while that grain's silo goes away (it comes back on a live one).</summary>
    public RetryOptions Wal { get; init; } = new() { Attempts = 20, Delay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1) };

    /// <summary>A starting silo asks its node grain to serve the applied lanes until the grain has moved to it (about 10 s).</summary>
    public RetryOptions ServeLanes { get; init; } = new() { Attempts = 100, Delay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromMilliseconds(100), Backoff = RetryBackoff.Constant };

    /// <summary>
    /// A cluster's auto_replan (docs/operations.md): planning and applying without the down nodes while calls still reach a
    /// dead silo's activations, or while a returning node's grain has not moved home (the apply aborts in prepare).
    /// </summary>
    public RetryOptions AutoReplan { get; init; } = new() { Attempts = 10, Delay = TimeSpan.FromSeconds(2), MaxDelay = TimeSpan.FromSeconds(2), Backoff = RetryBackoff.Constant };

    /// <summary>The first setting that cannot be used, as "Retry:Name: why", or null.</summary>
    public string? Problem() =>
        new[] { ("Commit", Commit), ("Wal", Wal), ("ServeLanes", ServeLanes), ("AutoReplan", AutoReplan) }
            .Select(s => RetryPolicy.Problem(s.Item2) is { } why ? $"Retry:{s.Item1}: {why}" : null)
            .FirstOrDefault(p => p is not null);
}

/// <summary>
/// A retried call (Polly's retry strategy, one pipeline per policy): retries the failures <c>transient</c> accepts
/// and the results a call's <c>again</c> rejects, waits as <see cref="RetryOptions"/> says, and logs a warning when
/// it gives up (the last failure is then thrown, or the last result returned, to the caller as before).
/// </summary>
public sealed class RetryPolicy
{
    private static readonly ResiliencePropertyKey<string> WhatKey = new("rtt.retry.what");
    private static readonly ResiliencePropertyKey<Func<object?, bool>?> AgainKey = new("rtt.retry.again");

    private readonly string _name;
    private readonly RetryOptions _options;
    private readonly Func<Exception, bool> _transient;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _pipeline;

    /// <param name="name">The setting's name, as in the configuration (<c>Retry:Commit</c>).</param>
    /// <param name="transient">Which failures are tried again; others go straight to the caller.</param>
    public RetryPolicy(string name, RetryOptions options, Func<Exception, bool> transient, ILogger logger, TimeProvider? time = null)
    {
        if (Problem(options) is { } why)
        {
            throw new ArgumentException($"{name}: {why}", nameof(options));
        }

        _name = name;
        _options = options;
        _transient = transient;
        _logger = logger;
        var builder = new ResiliencePipelineBuilder();
        if (time is not null)
        {
            builder.TimeProvider = time;
        }

        if (options.Attempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = options.Attempts - 1,
                Delay = options.Delay,
                MaxDelay = options.MaxDelay,
                BackoffType = options.Backoff == RetryBackoff.Linear ? DelayBackoffType.Linear : DelayBackoffType.Constant,
                UseJitter = false,
                ShouldHandle = args => ValueTask.FromResult(Retries(args.Outcome.Exception, args.Outcome.Result, args.Context.Properties.GetValue(AgainKey, null))),
                OnRetry = args =>
                {
                    _logger.LogDebug("Retrying {What} (try {Try} of {Attempts}, {Name}) in {Delay} ms: {Why}", args.Context.Properties.GetValue(WhatKey, ""),
                        args.AttemptNumber + 2, _options.Attempts, _name, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message ?? "not done yet");
                    return default;
                },
            });
        }

        _pipeline = builder.Build();
    }

    /// <summary>Why <paramref name="options"/> cannot be used, or null.</summary>
    public static string? Problem(RetryOptions options) =>
        options.Attempts < 1 || options.Delay < TimeSpan.Zero || options.MaxDelay < options.Delay || options.MaxDelay > TimeSpan.FromDays(1)
            ? $"{options.Attempts} attempt(s), delay {options.Delay}, max delay {options.MaxDelay}: give at least 1 attempt and 0 <= Delay <= MaxDelay <= 1 day"
            : null;

    private bool Retries(Exception? failure, object? result, Func<object?, bool>? again) =>
        failure is not null ? failure is not OutOfMemoryException && _transient(failure) : again is not null && again(result);

    /// <summary>
    /// Runs <paramref name="call"/> until it succeeds, fails for good, or the attempts run out (logged: "gave up on
    /// <paramref name="what"/>"). <paramref name="again"/> says which results are not done yet (null: any result is).
    /// </summary>
    public async Task<T> ExecuteAsync<T>(string what, Func<CancellationToken, ValueTask<T>> call, Func<T, bool>? again = null, CancellationToken cancellationToken = default)
    {
        Func<object?, bool>? retryResult = again is null ? null : r => r is T t && again(t);
        // Continuations stay on the caller's scheduler: in a grain, its activation's (Polly's default would leave it).
        var context = ResilienceContextPool.Shared.Get(continueOnCapturedContext: true, cancellationToken);
        Outcome<T> outcome;
        try
        {
            context.Properties.Set(WhatKey, what);
            context.Properties.Set(AgainKey, retryResult);
            outcome = await _pipeline.ExecuteOutcomeAsync(static async (context, c) =>
            {
                try
                {
                    return Outcome.FromResult(await c(context.CancellationToken));
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !context.CancellationToken.IsCancellationRequested)
                {
                    return Outcome.FromException<T>(ex);
                }
            }, context, call);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        if (Retries(outcome.Exception, outcome.Exception is null ? outcome.Result : null, retryResult))
        {
            _logger.LogWarning(outcome.Exception, "Gave up on {What} after {Attempts} attempt(s) ({Name}): {Why}", what, _options.Attempts, _name,
                outcome.Exception?.Message ?? "the last attempt was not done either");
        }

        outcome.ThrowIfException();
        return outcome.Result!;
    }

    /// <summary>As <see cref="ExecuteAsync{T}"/>, for a call without a result.</summary>
    public Task ExecuteAsync(string what, Func<CancellationToken, Task> call, CancellationToken cancellationToken = default) =>
        ExecuteAsync(what, async c =>
        {
            await call(c);
            return true;
        }, null, cancellationToken);
}
