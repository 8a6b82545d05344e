;;; Compiles the stub library: guile --no-auto-compile build.scm SOURCE OUTPUT.go. Any compiler warning fails the
;;; build (exit 1), as warnings-as-errors does for the compiled stubs.
(use-modules (system base compile))

(let* ((args (command-line))
       (warnings (open-output-string)))
  (parameterize ((current-warning-port warnings))
    (compile-file (cadr args) #:output-file (caddr args)
                  #:opts '(#:warnings (unbound-variable macro-use-before-definition arity-mismatch format
                                       duplicate-case-datum))))
  (let ((text (get-output-string warnings)))
    (display text (current-error-port))
    (exit (if (string-null? text) 0 1))))
