! RTT stub for Fortran 2008 (ISO_C_BINDING to the C library's socket calls): serves a `process` endpoint over a UDS
! lane (docs/stub-protocol.md).
module rtt_stub
  use iso_c_binding
  implicit none
  private
  public :: rtt_serve, rtt_crc32c, rtt_handler, RTT_MAX_PAYLOAD

  integer, parameter :: RTT_MAX_PAYLOAD = 65536
  integer, parameter :: F_NO_PAYLOAD_CRC = 1, F_RESPONSE = 2, F_ERROR = 4, F_PROBE = 8
  integer(c_int), parameter :: AF_UNIX = 1, SOCK_STREAM = 1, MSG_NOSIGNAL = 16384
  integer, parameter :: BUF_SIZE = 4 * (24 + RTT_MAX_PAYLOAD)
  integer(8), parameter :: MASK32 = int(z'FFFFFFFF', 8)

  type, bind(c) :: sockaddr_un
    integer(c_short) :: family
    character(kind=c_char) :: path(108)
  end type

  abstract interface
    ! Answers one request: sets resp(1:m) and returns .true., or returns .false. with resp(1:m) = "CODE message"
    ! (e.g. "RTT-CALL-004 bad input") to answer with an error frame.
    logical function rtt_handler(req, n, resp, m)
      import :: c_char
      character(kind=c_char), intent(in) :: req(*)
      integer, intent(in) :: n
      character(kind=c_char), intent(inout) :: resp(*)
      integer, intent(out) :: m
    end function
  end interface

  interface
    integer(c_int) function c_socket(domain, kind, protocol) bind(c, name='socket')
      import :: c_int
      integer(c_int), value :: domain, kind, protocol
    end function
    integer(c_int) function c_connect(fd, addr, len) bind(c, name='connect')
      import :: c_int, sockaddr_un
      integer(c_int), value :: fd, len
      type(sockaddr_un), intent(in) :: addr
    end function
    integer(c_intptr_t) function c_recv(fd, buf, n, flags) bind(c, name='recv')
      import :: c_int, c_intptr_t, c_size_t, c_char
      integer(c_int), value :: fd, flags
      character(kind=c_char) :: buf(*)
      integer(c_size_t), value :: n
    end function
    integer(c_intptr_t) function c_send(fd, buf, n, flags) bind(c, name='send')
      import :: c_int, c_intptr_t, c_size_t, c_char
      integer(c_int), value :: fd, flags
      character(kind=c_char), intent(in) :: buf(*)
      integer(c_size_t), value :: n
    end function
    integer(c_int) function c_close(fd) bind(c, name='close')
      import :: c_int
      integer(c_int), value :: fd
    end function
  end interface

  integer(8) :: table(0:255)
  logical :: table_ready = .false.

contains

  subroutine init_table()
    integer :: i, k
    integer(8) :: c
    do i = 0, 255
      c = i
      do k = 1, 8
        if (iand(c, 1_8) /= 0) then
          c = ieor(shiftr(c, 1), int(z'82F63B78', 8))
        else
          c = shiftr(c, 1)
        end if
      end do
      table(i) = c
    end do
    table_ready = .true.
  end subroutine

  ! CRC-32C (Castagnoli) of b(1:n); crc continues an earlier result (0 to start). Values are kept in 64-bit integers.
  integer(8) function rtt_crc32c(crc, b, n) result(r)
    integer(8), intent(in) :: crc
    character(kind=c_char), intent(in) :: b(*)
    integer, intent(in) :: n
    integer :: i
    integer(8) :: c
    if (.not. table_ready) call init_table()
    c = ieor(crc, MASK32)
    do i = 1, n
      c = ieor(table(iand(ieor(c, int(ichar(b(i)), 8)), 255_8)), shiftr(c, 8))
    end do
    r = ieor(c, MASK32)
  end function

  integer(8) function rd32(b, at) result(v)
    character(kind=c_char), intent(in) :: b(*)
    integer, intent(in) :: at
    v = ior(ior(int(ichar(b(at)), 8), shiftl(int(ichar(b(at + 1)), 8), 8)), &
            ior(shiftl(int(ichar(b(at + 2)), 8), 16), shiftl(int(ichar(b(at + 3)), 8), 24)))
  end function

  subroutine wr32(b, at, v)
    character(kind=c_char), intent(inout) :: b(*)
    integer, intent(in) :: at
    integer(8), intent(in) :: v
    integer :: k
    do k = 0, 3
      b(at + k) = achar(iand(shiftr(v, 8 * k), 255_8))
    end do
  end subroutine

  ! Writes a frame at out(at:) whose payload is already at out(at+24:at+23+n); returns its length.
  integer function seal(out, at, flags, route, id, n) result(total)
    character(kind=c_char), intent(inout) :: out(*)
    integer, intent(in) :: at, flags, n
    integer(8), intent(in) :: route, id
    integer(8) :: c
    out(at:at + 3) = ['R', 'T', 'T', '1']
    out(at + 4) = achar(iand(flags, 255))
    out(at + 5) = achar(shiftr(flags, 8))
    out(at + 6) = achar(0)
    out(at + 7) = achar(0)
    call wr32(out, at + 8, route)
    call wr32(out, at + 12, id)
    call wr32(out, at + 16, int(n, 8))
    c = rtt_crc32c(0_8, out(at:at + 19), 20)
    if (iand(flags, F_NO_PAYLOAD_CRC) == 0) c = rtt_crc32c(c, out(at + 24:at + 23 + n), n)
    call wr32(out, at + 20, c)
    total = 24 + n
  end function

  logical function send_all(fd, b, n)
    integer(c_int), intent(in) :: fd
    character(kind=c_char), intent(in) :: b(*)
    integer, intent(in) :: n
    integer :: done
    integer(c_intptr_t) :: w
    done = 0
    send_all = .true.
    do while (done < n)
      w = c_send(fd, b(done + 1:n), int(n - done, c_size_t), MSG_NOSIGNAL)
      if (w <= 0) then
        send_all = .false.
        return
      end if
      done = done + int(w)
    end do
  end function

  ! Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
  integer function rtt_serve(handler) result(code)
    procedure(rtt_handler) :: handler
    character(len=512) :: path
    integer :: plen, status, i, start, fin, n, flags, olen, m, nxt
    integer(c_int) :: fd
    type(sockaddr_un) :: addr
    character(kind=c_char) :: req(19), reply(16)
    character(kind=c_char), allocatable :: buf(:), out(:)
    integer(c_intptr_t) :: r
    integer(8) :: c, len8
    logical :: bad, ok
    character(len=*), parameter :: name = 'rtt-service'

    call get_environment_variable('RTT_SERVICE_SOCKET', path, plen, status)
    if (status /= 0 .or. plen == 0) then
      write (0, '(a)') 'RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service'
      code = 2
      return
    end if
    fd = c_socket(AF_UNIX, SOCK_STREAM, 0_c_int)
    addr%family = int(AF_UNIX, c_short)
    addr%path = achar(0)
    do i = 1, min(plen, 107)
      addr%path(i) = path(i:i)
    end do
    if (fd < 0 .or. c_connect(fd, addr, int(110, c_int)) /= 0) then
      write (0, '(a)') 'RTT-LANE-002: cannot connect to ' // path(1:plen)
      code = 1
      return
    end if
    req(1:8) = ['R', 'T', 'T', 'Q', achar(2), achar(1), achar(len(name)), achar(0)]
    do i = 1, len(name)
      req(8 + i) = name(i:i)
    end do
    ok = send_all(fd, req, 19)
    n = 0
    do while (ok .and. n < 16)
      r = c_recv(fd, reply(n + 1:), int(16 - n, c_size_t), 0_c_int)
      if (r <= 0) ok = .false.
      if (r > 0) n = n + int(r)
    end do
    if (.not. ok .or. any(reply(1:4) /= ['R', 'T', 'T', 'R']) .or. rd32(reply, 5) /= 0 .or. rd32(reply, 13) /= 1) then
      write (0, '(a)') 'RTT-LANE-002: attach refused'
      code = 1
      return
    end if
    allocate (buf(BUF_SIZE), out(BUF_SIZE + 1024))
    start = 1
    fin = 0
    do
      if (start > fin) then
        start = 1
        fin = 0
      else if (start > 1 .and. BUF_SIZE - fin < 24 + RTT_MAX_PAYLOAD) then
        buf(1:fin - start + 1) = buf(start:fin)
        fin = fin - start + 1
        start = 1
      end if
      r = c_recv(fd, buf(fin + 1:), int(BUF_SIZE - fin, c_size_t), 0_c_int)
      if (r <= 0) exit ! the host closed the lane
      fin = fin + int(r)
      olen = 0
      do while (fin - start + 1 >= 24)
        len8 = rd32(buf, start + 16)
        flags = ior(ichar(buf(start + 4)), shiftl(ichar(buf(start + 5)), 8))
        bad = any(buf(start:start + 3) /= ['R', 'T', 'T', '1']) .or. len8 > RTT_MAX_PAYLOAD
        n = int(min(len8, int(RTT_MAX_PAYLOAD, 8)))
        if (.not. bad) then
          if (fin - start + 1 < 24 + n) exit
          c = rtt_crc32c(0_8, buf(start:), 20)
          if (iand(flags, F_NO_PAYLOAD_CRC) == 0) c = rtt_crc32c(c, buf(start + 24:), n)
          bad = c /= rd32(buf, start + 20)
        end if
        if (bad) then
          nxt = 0
          do i = start + 1, fin - 3
            if (all(buf(i:i + 3) == ['R', 'T', 'T', '1'])) then
              nxt = i
              exit
            end if
          end do
          if (nxt > 0) then
            start = nxt
          else
            start = max(start + 1, fin - 2)
          end if
          cycle
        end if
        if (iand(flags, F_RESPONSE) == 0) then
          if (olen + 24 + RTT_MAX_PAYLOAD > size(out)) then
            if (.not. send_all(fd, out, olen)) exit
            olen = 0
          end if
          if (iand(flags, F_PROBE) /= 0) then
            out(olen + 25:olen + 24 + n) = buf(start + 24:start + 23 + n)
            olen = olen + seal(out, olen + 1, ior(F_RESPONSE, F_PROBE), rd32(buf, start + 8), rd32(buf, start + 12), n)
          else
            ok = handler(buf(start + 24:start + 23 + n), n, out(olen + 25:), m)
            m = max(0, min(m, RTT_MAX_PAYLOAD))
            if (ok) then
              olen = olen + seal(out, olen + 1, F_RESPONSE, rd32(buf, start + 8), rd32(buf, start + 12), m)
            else
              olen = olen + seal(out, olen + 1, ior(F_RESPONSE, F_ERROR), rd32(buf, start + 8), rd32(buf, start + 12), m)
            end if
          end if
        end if
        start = start + 24 + n
      end do
      if (olen > 0) then
        if (.not. send_all(fd, out, olen)) exit
      end if
    end do
    i = c_close(fd)
    code = 0
  end function
end module rtt_stub
