control 'baseline-files-01' do
  impact 1.0
  title 'No world-writable files under /etc'
  describe command('find /etc -xdev -type f -perm -0002 -print') do
    its('exit_status') { should eq 0 }
    its('stdout') { should be_empty }
  end
end

control 'baseline-files-02' do
  impact 1.0
  title 'Account databases have safe owners and modes'
  describe file('/etc/passwd') do
    it { should be_owned_by 'root' }
    it { should_not be_writable.by('group') }
    it { should_not be_writable.by('others') }
  end
  describe file('/etc/shadow') do
    it { should be_owned_by 'root' }
    it { should_not be_readable.by('others') }
    it { should_not be_writable.by('others') }
  end
end

control 'baseline-files-03' do
  impact 0.7
  title 'sshd_config is readable by root only'
  only_if('sshd is installed') { file('/etc/ssh/sshd_config').exist? }
  describe file('/etc/ssh/sshd_config') do
    it { should be_owned_by 'root' }
    it { should_not be_readable.by('others') }
  end
end
