! Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
program echo_service
  use iso_c_binding
  use rtt_stub
  implicit none
  call exit(rtt_serve(echo))
contains
  logical function echo(req, n, resp, m)
    character(kind=c_char), intent(in) :: req(*)
    integer, intent(in) :: n
    character(kind=c_char), intent(inout) :: resp(*)
    integer, intent(out) :: m
    character(len=*), parameter :: failure = 'RTT-CALL-004 the sample service was asked to fail'
    integer :: i
    if (n == 5) then
      if (all(req(1:5) == ['!', 'f', 'a', 'i', 'l'])) then
        do i = 1, len(failure)
          resp(i) = failure(i:i)
        end do
        m = len(failure)
        echo = .false.
        return
      end if
    end if
    resp(1:n) = req(1:n)
    m = n
    echo = .true.
  end function
end program
