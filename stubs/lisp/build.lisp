;;;; Compiles the stub library: sbcl --script build.lisp SOURCE OUTPUT.fasl. A warning or style warning fails the
;;;; build (exit 1), as warnings-as-errors does for the compiled stubs.
(require :sb-bsd-sockets)
(destructuring-bind (source output) (cdr sb-ext:*posix-argv*)
  (multiple-value-bind (fasl warnings-p failure-p) (compile-file source :output-file output)
    (sb-ext:exit :code (if (and fasl (not warnings-p) (not failure-p)) 0 1))))
